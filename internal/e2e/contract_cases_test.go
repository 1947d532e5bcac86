package e2e

import "strings"

// Reusable inputs of the contract cases.
const (
	okEntry    = "- {name: batch, address: 10.0.0.9, port: 80}\n"
	longName   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
	secretPass = "s3cretpw"
)

// c builds a case that must exit with code want.
func c(name string, want int, args ...string) contractCase {
	return contractCase{name: name, want: want, args: args}
}

func (tc contractCase) err(re string) contractCase         { tc.stderr = re; return tc }
func (tc contractCase) out(re string) contractCase         { tc.stdout = re; return tc }
func (tc contractCase) withEnv(kv ...string) contractCase  { tc.env = kv; return tc }
func (tc contractCase) on(backends ...string) contractCase { tc.only = backends; return tc }
func (tc contractCase) noSecret(s string) contractCase     { tc.secret = s; return tc }
func (tc contractCase) file(name, content string) contractCase {
	tc.files = map[string]string{name: content}
	return tc
}

// config is a case run with --config sdctl-test.yaml holding content.
func config(name, content, stderr string) contractCase {
	return c(name, 2, "--config", "sdctl-test.yaml", "catalog").file("sdctl-test.yaml", content).err(stderr)
}

// batch is a case that registers the file b.yaml holding content and must be refused.
func batch(name, content, stderr string, extra ...string) contractCase {
	return c(name, 2, append([]string{"register", "-f", "b.yaml"}, extra...)...).file("b.yaml", content).err(stderr)
}

func contractCases() []contractCase {
	return []contractCase{
		// The command line itself.
		c("unknown command", 2, "resovle").err(`did you mean resolve\?`), //nolint:misspell // the typo is the test
		c("unknown command 2", 2, "catlog", "web").err(`did you mean catalog\?`),
		c("help on an unknown command", 2, "help", "resovle").err(`unknown command "resovle"`), //nolint:misspell // the typo is the test
		c("completion for an unknown shell", 2, "completion", "tcsh").err(`unknown command "tcsh"`),
		c("unknown subcommand of cluster", 2, "cluster", "stauts").err(`did you mean status\?`),
		c("unknown subcommand of config", 2, "config", "show").err(`unknown command "show"`),
		c("unknown subcommand of backend", 2, "backend", "lst").err(`did you mean list\?`),
		c("unknown global flag", 2, "--nope", "catalog").err(`unknown flag: --nope`),
		c("misspelt flag", 2, "resolve", "service-web", "--tmeout", "1s").err(`did you mean --timeout\?`),
		c("program name once", 2, "resolve", "a", "b").err(`^sdctl: resolve: accepts 1 arg`),
		c("version takes no argument", 2, "version", "now"),
		c("version output", 2, "version", "-o", "wide").err(`unknown format "wide"`),
		c("timeout zero", 2, "--timeout", "0s", "catalog").err(`must be positive`),
		c("timeout negative", 2, "--timeout", "-1s", "catalog"),
		c("timeout without unit", 2, "--timeout", "10", "catalog"),
		c("plugin timeout zero", 2, "--plugin-timeout", "0s", "catalog"),
		c("log level", 2, "--log-level", "loud", "catalog"),
		c("backend empty", 2, "--backend", "", "catalog").err(`backend name is empty`),
		c("backend unknown", 2, "--backend", "nosuch", "catalog").err(`nosuch`),
		c("backend not a name", 2, "--backend", "a b", "catalog"),
		c("config file missing", 2, "--config", "/nonexistent/sdctl.yaml", "catalog"),
		c("SDCTL_TIMEOUT without unit", 2, "catalog").withEnv("SDCTL_TIMEOUT=10").err(`env SDCTL_TIMEOUT.*unit is required`),
		c("SDCTL_TIMEOUT garbage", 2, "catalog").withEnv("SDCTL_TIMEOUT=soon"),
		c("SDCTL_LOG_LEVEL", 2, "catalog").withEnv("SDCTL_LOG_LEVEL=loud"),
		c("SDCTL_PLUGIN_MTLS", 2, "catalog").withEnv("SDCTL_PLUGIN_MTLS=maybe"),
		c("SDCTL_BACKEND unknown", 2, "catalog").withEnv("SDCTL_BACKEND=nosuch"),
		c("SDCTL_PLUGIN_TIMEOUT", 2, "catalog").withEnv("SDCTL_PLUGIN_TIMEOUT=-5s"),

		// Config files.
		config("config typo backend", "backnd: file\n", `invalid backnd \(from config file sdctl-test.yaml\): unknown key; did you mean "backend"\?`),
		config("config typo timeout", "timout: 1s\n", `did you mean "timeout"\?`),
		config("config section as a value", "file: yes\n", `file is a backend section`),
		config("config typo in another backend's section", "consul: {addres: 'x:1'}\n", `invalid consul.addres.*did you mean "address"\?`), //nolint:misspell // the typo is the test
		config("config typo in etcd section", "etcd: {endpoint: ['x:1']}\n", `did you mean "endpoints"\?`),
		config("config typo in file section", "file: {pth: /tmp/x}\n", `invalid file.pth`),
		config("config unknown section", "nosection: {a: 1}\n", `unknown key|unknown section`),
		config("config nested unknown", "consul: {tls: {ca: x}}\n", `invalid consul.tls.ca`),
		config("config timeout without unit", "timeout: 10\n", `10 is not a duration`),
		config("config timeout zero", "timeout: 0s\n", `must be positive`),
		config("config timeout mapping", "timeout: {a: 1}\n", `timeout`),
		config("config log level list", "log-level: [a]\n", `log-level`),
		config("config plugin-mtls", "plugin-mtls: maybe\n", `plugin-mtls`),
		config("config not yaml", "{{{\n", `config`),
		config("config global used as section", "timeout: {x: 1s}\n", `timeout`),
		config("config second document", "timeout: 5s\n---\nbackend: nosuch\n", `invalid config \(from config file sdctl-test.yaml\): line 2: a second YAML document`),
		config("config password in URL", "backend: consul\nconsul: {address: 'http://user:"+secretPass+"@127.0.0.1:8500x'}\n", `<redacted>`).noSecret(secretPass).on("file"),
		c("config view redacts URL password", 0, "--config", "sdctl-test.yaml", "config", "view").file("sdctl-test.yaml", "consul: {address: 'http://user:"+secretPass+"@127.0.0.1:8500'}\nbackend: consul\n").noSecret(secretPass),
		c("env password in URL", 2, "--backend", "consul", "resolve", "service-web").withEnv("CONSUL_HTTP_ADDR=http://user:" + secretPass + "@127.0.0.1:8500x").noSecret(secretPass),
		c("config view unknown format", 2, "config", "view", "-o", "toml"),
		c("config view template error", 2, "config", "view", "--template", "{{"),
		c("config view extra argument", 2, "config", "view", "all"),

		// register, one instance.
		c("register without arguments", 2, "register").err(`missing NAME`),
		c("register without address", 2, "register", "web").err(`missing HOST:PORT`),
		c("register without port", 2, "register", "web", "10.0.0.1"),
		c("register port 0", 2, "register", "web", "10.0.0.1:0").err(`out of range`),
		c("register port 65536", 2, "register", "web", "10.0.0.1:65536"),
		c("register port negative", 2, "register", "web", "10.0.0.1:-1"),
		c("register port by name", 2, "register", "web", "10.0.0.1:http"),
		c("register bad IPv4", 2, "register", "web", "999.1.1.1:80"),
		c("register IPv6 without brackets", 2, "register", "web", "::1:80"),
		c("register IPv4 in brackets", 2, "register", "web", "[10.0.0.1]:80"),
		c("register name with a space", 2, "register", "web server", "10.0.0.1:80"),
		c("register name with a trailing dot", 2, "register", "web.", "10.0.0.1:80"),
		c("register name too long", 2, "register", longName+"xx", "10.0.0.1:80"),
		c("register name unicode", 2, "register", "wéb", "10.0.0.1:80"),
		c("register too many arguments", 2, "register", "web", "10.0.0.1:80", "x"),
		c("register id dot", 2, "register", "web", "10.0.0.1:80", "--id", ".").err(`"\." is not allowed`),
		c("register id dot dot", 2, "register", "web", "10.0.0.1:80", "--id", ".."),
		c("register id slash", 2, "register", "web", "10.0.0.1:80", "--id", "a/b"),
		c("register id space", 2, "register", "web", "10.0.0.1:80", "--id", "a b"),
		c("register id percent", 2, "register", "web", "10.0.0.1:80", "--id", "a%2F"),
		c("register id empty", 2, "register", "web", "10.0.0.1:80", "--id", "").err(`instance ID is empty`),
		c("register id too long", 2, "register", "web", "10.0.0.1:80", "--id", strings.Repeat("i", 257)),
		c("register empty tag", 2, "register", "web", "10.0.0.1:80", "--tag", ""),
		c("register tag with a space", 2, "register", "web", "10.0.0.1:80", "--tag", "a b"),
		c("register meta without =", 2, "register", "web", "10.0.0.1:80", "--meta", "novalue"),
		c("register meta empty key", 2, "register", "web", "10.0.0.1:80", "--meta", "=v"),
		c("register meta bad key", 2, "register", "web", "10.0.0.1:80", "--meta", "k!=v"),
		c("register meta key twice", 2, "register", "web", "10.0.0.1:80", "--meta", "k=v", "--meta", "k=w").err(`given twice`),
		c("register weight 0 drains", 0, "register", "drained", "10.0.0.1:80", "--weight", "0"),
		c("register weight negative", 2, "register", "web", "10.0.0.1:80", "--weight", "-1"),
		c("register weight 65536", 2, "register", "web", "10.0.0.1:80", "--weight", "65536").err(`out of range \(1-65535, or 0 to drain\)`),
		c("register weight beyond int32", 2, "register", "web", "10.0.0.1:80", "--weight", "4294967297"),
		c("register weight 2^32", 2, "register", "web", "10.0.0.1:80", "--weight", "4294967296"),
		c("register weight not a number", 2, "register", "web", "10.0.0.1:80", "--weight", "heavy"),
		c("register ttl garbage", 2, "register", "web", "10.0.0.1:80", "--ttl", "soon"),
		c("register ttl negative", 2, "register", "web", "10.0.0.1:80", "--ttl", "-1s"),
		c("register keepalive without ttl", 2, "register", "web", "10.0.0.1:80", "--keepalive").err(`needs --ttl`),
		c("register check interval without check", 2, "register", "web", "10.0.0.1:80", "--check-interval", "5s").err(`--check-interval needs a check`),
		c("register check timeout without check", 2, "register", "web", "10.0.0.1:80", "--check-timeout", "1s"),
		c("register deregister-after without check", 2, "register", "web", "10.0.0.1:80", "--check-deregister-after", "1m"),
		c("register initial status without check", 2, "register", "web", "10.0.0.1:80", "--check-initial-status", "critical"),
		c("register tls-skip-verify without check", 2, "register", "web", "10.0.0.1:80", "--check-tls-skip-verify"),
		c("register tls-skip-verify with a tcp check", 2, "register", "web", "10.0.0.1:80", "--check-tcp", "10.0.0.1:80", "--check-tls-skip-verify"),
		c("register check-http not http", 2, "register", "web", "10.0.0.1:80", "--check-http", "ftp://10.0.0.1/"),
		c("register check-http without host", 2, "register", "web", "10.0.0.1:80", "--check-http", "http://"),
		c("register check-tcp without port", 2, "register", "web", "10.0.0.1:80", "--check-tcp", "nohost"),
		c("register check interval 0", 2, "register", "web", "10.0.0.1:80", "--check-http", "http://10.0.0.1/", "--check-interval", "0s"),
		c("register check initial status bogus", 2, "register", "web", "10.0.0.1:80", "--check-http", "http://10.0.0.1/", "--check-initial-status", "fine"),
		c("register check on a backend without checks", 2, "register", "web", "10.0.0.1:80", "--check-http", "http://10.0.0.1/").on("file", "etcd").err(`runs no http checks`),
		c("register address twice", 2, "register", "web", "10.0.0.1:80", "--address", "10.0.0.1"),
		c("register --port 0", 2, "register", "web", "--port", "0"),
		c("register bad --address", 2, "register", "web", "--address", "bad!", "--port", "80"),

		// register -f.
		c("batch file missing", 2, "register", "-f", "missing.yaml"),
		c("batch file a directory", 2, "register", "-f", "."),
		c("batch empty stdin", 2, "register", "-f", "-").err(`no instances`),
		batch("batch unknown key addr", "- name: web\n  addr: 10.0.0.1\n  port: 80\n", `b.yaml: entry 1 \(line 1\): unknown key "addr"; did you mean "address"\?`),
		batch("batch unknown key foo", "instances:\n  - {name: web, address: 10.0.0.1, port: 80, foo: 1}\n", `unknown key "foo"`),
		batch("batch unknown check key", "- {name: web, address: 10.0.0.1, port: 80, checks: [{kind: http, target: 'http://x/', every: 5s}]}\n", `unknown key "every"`),
		batch("batch unknown key in JSON", `[{"name":"web","address":"10.0.0.1","port":80,"foo":1}]`, `unknown key "foo"`),
		batch("batch key next to instances", "instances: []\nversion: 2\n", `unknown key "version"`),
		batch("batch duplicate IDs", okEntry+"- {name: batch, address: 10.0.0.9, port: 80}\n", `entry 2 \(line 2\) has the same ID "batch-10.0.0.9-80" as entry 1`),
		batch("batch duplicate explicit IDs", "- {id: a, name: web, address: 10.0.0.1, port: 80}\n- {id: a, name: api, address: 10.0.0.2, port: 81}\n", `same ID "a"`),
		batch("batch duplicate key", "- {name: web, name: api, address: 10.0.0.1, port: 80}\n", `already defined`),
		batch("batch duplicate key in JSON", `[{"name":"web","name":"api","address":"10.0.0.1","port":80}]`, `already defined`),
		batch("batch port as string", "- {name: web, address: 10.0.0.1, port: '80'}\n", `port: a string where a whole number is expected`),
		batch("batch meta value a number", "- {name: web, address: 10.0.0.1, port: 80, meta: {v: 2}}\n", `meta: a number where a string is expected`),
		batch("batch entry not a mapping", "- web\n", `must be a mapping`),
		batch("batch instances not a list", "instances: web\n", `instances must be a list`),
		batch("batch garbage", "{{{\n", `b.yaml`),
		batch("batch binary", "\x00\x01\x02\xff", `b.yaml`),
		batch("batch tab indentation", "- name: web\n\taddress: 10.0.0.1\n", `b.yaml`),
		batch("batch JSON with trailing data", `[{"name":"web","address":"10.0.0.1","port":80}] x`, `b.yaml`),
		batch("batch null", "instances:\n", `no instances`),
		batch("batch second document", okEntry+"---\n- {name: b2, address: 10.0.0.9, port: 81}\n", `b.yaml: line 2: a second YAML document`),
		batch("batch ttl garbage", "- {name: web, address: 10.0.0.1, port: 80, ttl: soon}\n", `"soon" is not a duration`),
		batch("batch ttl number", "- {name: web, address: 10.0.0.1, port: 80, ttl: 10}\n", `entry 1`),
		batch("batch id dot dot", "- {id: '..', name: web, address: 10.0.0.1, port: 80}\n", `is not allowed`),
		batch("batch health bogus", "- {name: web, address: 10.0.0.1, port: 80, health: fine}\n", `health "fine"`),
		batch("batch weight too large", "- {name: web, address: 10.0.0.1, port: 80, weight: 70000}\n", `out of range`),
		batch("batch invalid third entry writes nothing", okEntry+"- {name: b2, address: 10.0.0.9, port: 81}\n- {name: b3, address: 10.0.0.9, port: 0}\n", `entry 3 \(line 3\)`),
		batch("batch unsupported check writes nothing", okEntry+"- {name: b2, address: 10.0.0.9, port: 81, checks: [{kind: http, target: 'http://10.0.0.9/', interval: 5s}]}\n", `runs no http checks`).on("file", "etcd"),
		batch("batch with --weight", okEntry, `--weight applies to one instance`, "--weight", "2"),
		batch("batch with --ttl", okEntry, `--ttl applies to one instance`, "--ttl", "5s"),
		batch("batch with --id", okEntry, `--id applies to one instance`, "--id", "x"),
		batch("batch with --check-http", okEntry, `--check-http applies to one instance`, "--check-http", "http://x/"),
		batch("batch with --keepalive", okEntry, `applies to one instance`, "--keepalive"),
		batch("batch with an empty --tag", okEntry, `tag is empty`, "--tag", ""),
		batch("batch with a bad --meta", okEntry, `KEY=VALUE`, "--meta", "x"),
		c("batch with NAME", 2, "register", "-f", "b.yaml", "web").file("b.yaml", okEntry).err(`cannot be combined`),

		// deregister.
		c("deregister without arguments", 2, "deregister"),
		c("deregister missing instance", 3, "deregister", "nope").err(`^sdctl: deregister nope: [^\n]*no instance`),
		c("deregister too many arguments", 2, "deregister", "a", "b", "c"),
		c("deregister id dot dot", 2, "deregister", ".."),
		c("deregister id dot", 2, "deregister", "."),
		c("deregister id slash", 2, "deregister", "a/b"),
		c("deregister id with a space", 2, "deregister", "a b"),
		c("deregister name and address without port", 2, "deregister", "web", "10.0.0.1"),
		c("deregister name and port 0", 2, "deregister", "web", "10.0.0.1:0"),
		c("deregister bad name", 2, "deregister", "web server", "10.0.0.1:80"),
		c("deregister unknown flag", 2, "deregister", "x", "--force"),

		// resolve.
		c("resolve without arguments", 2, "resolve"),
		c("resolve two arguments", 2, "resolve", "a", "b"),
		c("resolve URL without host", 2, "resolve", "http://"),
		c("resolve URL host not a name", 2, "resolve", "http://bad name/x"),
		c("resolve URL with a port", 2, "resolve", "http://service-web:80/").err(`the port comes from the instance`),
		c("resolve URL with an empty port", 2, "resolve", "http://service-web:/x"),
		c("resolve URL with an IP", 2, "resolve", "http://[::1]/"),
		c("resolve name with a bang", 2, "resolve", "web!"),
		c("resolve unknown strategy", 2, "resolve", "service-web", "--strategy", "nearest"),
		c("resolve min 0", 2, "resolve", "service-web", "--min", "0"),
		c("resolve min negative", 2, "resolve", "service-web", "--min", "-1"),
		c("resolve wait negative", 2, "resolve", "service-web", "--wait", "-1s"),
		c("resolve wait garbage", 2, "resolve", "service-web", "--wait", "soon"),
		c("resolve watch with wait", 2, "resolve", "service-web", "--watch", "--wait", "1s").err(`--wait does not apply`),
		c("resolve watch with strategy", 2, "resolve", "service-web", "--watch", "--strategy", "first").err(`--strategy does not apply`),
		c("resolve watch with min", 2, "resolve", "service-web", "--watch", "--min", "2"),
		c("resolve all with strategy", 2, "resolve", "service-web", "--all", "--strategy", "first"),
		c("resolve unknown format", 2, "resolve", "service-web", "-o", "wide"),
		c("resolve format and template", 2, "resolve", "service-web", "-o", "json", "--template", "{{.ID}}").err(`choose one`),
		c("resolve template does not parse", 2, "resolve", "service-web", "--template", "{{"),
		c("resolve template unknown field", 2, "resolve", "service-web", "--template", "{{.Nope}}").err(`--template`),
		c("resolve empty tag", 2, "resolve", "service-web", "--tag", ""),
		c("resolve typo of a service", 3, "resolve", "servce-web").err(`no such service; did you mean service-web\?`),
		c("resolve unknown service", 3, "resolve", "nothere").err(`no such service`),
		c("resolve service all critical", 3, "resolve", "service-down").err(`no healthy instance \(1 instance: 1 critical\)`),
		c("resolve tag nobody has", 3, "resolve", "service-web", "--tag", "v9").err(`none of its 2 instances has them`),
		c("resolve more than exist", 3, "resolve", "service-web", "--min", "3").err(`2 healthy instances, 3 required`),
		c("resolve URL in capitals", 0, "resolve", "HTTP://SERVICE-WEB/x").out(`^HTTP://10\.0\.0\.[12]:3000/x\n$`),
		c("resolve URL of a service with capitals", 0, "resolve", "http://service-caps/x").out(`^http://10\.0\.0\.4:3000/x\n$`),
		c("resolve URL of a service with capitals as spelt", 0, "resolve", "http://Service-Caps/x", "--wait", "5s").out(`^http://10\.0\.0\.4:3000/x\n$`),
		c("resolve wait shorter than an answer", 0, "resolve", "service-web", "--wait", "1ns").out(`^10\.0\.0\.[12]:3000\n$`),

		// catalog.
		c("catalog empty tag", 2, "catalog", "service-web", "--tag", ""),
		c("catalog tag without name", 2, "catalog", "--tag", "v1").err(`--tag needs NAME`),
		c("catalog two names", 2, "catalog", "a", "b"),
		c("catalog bad name", 2, "catalog", "bad name"),
		c("catalog unknown format", 2, "catalog", "-o", "wide"),
		c("catalog template does not parse", 2, "catalog", "--template", "{{"),
		c("catalog template unknown field", 2, "catalog", "--template", "{{.Address}}").err(`--template`),
		c("catalog format and template", 2, "catalog", "-o", "yaml", "--template", "{{.Name}}"),
		c("catalog unknown service", 3, "catalog", "nothere"),

		// cluster status, backend list.
		c("cluster status extra argument", 2, "cluster", "status", "now"),
		c("cluster status unknown format", 2, "cluster", "status", "-o", "wide"),
		c("cluster status template unknown field", 2, "cluster", "status", "--template", "{{.Nope}}"),
		c("backend list extra argument", 2, "backend", "list", "all"),
		c("backend list unknown format", 2, "backend", "list", "-o", "csv"),

		// watch: refused before it looks for Docker.
		c("watch unsupported registry", 2, "watch", "zookeeper://127.0.0.1:2181").err(`zookeeper`),
		c("watch unknown flag", 2, "watch", "--nope"),
		c("watch resync garbage", 2, "watch", "--resync", "soon"),
		c("watch two registries", 2, "watch", "consul://127.0.0.1:8500", "etcd://127.0.0.1:2379"),
		c("watch network without internal", 2, "watch", "--network", "backend").err(`--network needs --internal`),
	}
}
