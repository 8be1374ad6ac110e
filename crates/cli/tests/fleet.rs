//! A fleet on a real PostgreSQL: a throwaway cluster (`initdb`, `pg_ctl` on a loopback port,
//! as the `postgres` user when the tests run as root, since `initdb` refuses root), the schema
//! and the box role made by `edgeway fleet init`, and four `edgeway serve` boxes shipping their
//! query logs. The center ends up holding exactly the union of the boxes' rows, with no gap
//! and no duplicate in `(box_id, seq)`, through a center outage (every request still answered)
//! and a `kill -9` of a box with a backlog; the box role can only insert; `fleet status`,
//! `fleet prune`, `fleet push` and `stats --fleet` work on it; and a center that takes TLS only
//! (a certificate from a throwaway authority) is reached over TLS, with its certificate checked;
//! graded evaluation answers and guard decisions ship too, their text only when asked.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{chat, Server};
use serde_json::json;

/// A PostgreSQL cluster of its own on a free loopback port, stopped and removed on drop.
struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_root: bool,
}

impl Postgres {
    fn start() -> Self {
        let postgres = Self::init();
        postgres.start_server();
        postgres
    }

    /// A cluster that takes TLS connections only, with a certificate for 127.0.0.1 signed by a
    /// throwaway authority; returns it and the authority's certificate (PEM).
    fn start_tls_only() -> (Self, PathBuf) {
        let postgres = Self::init();
        let data = postgres.dir.join("data");
        let ca = postgres.dir.join("ca.crt");
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl").args(args).current_dir(&postgres.dir).output().unwrap();
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=edgeway test authority",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(postgres.dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
            .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        for file in ["server.crt", "server.key"] {
            std::fs::rename(postgres.dir.join(file), data.join(file)).unwrap();
        }
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        if postgres.as_root {
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(&postgres.dir).status().unwrap();
        }
        Command::new("chmod").arg("600").arg(data.join("server.key")).status().unwrap();
        postgres.start_server();
        (postgres, ca)
    }

    /// A new cluster, not started yet.
    fn init() -> Self {
        let bin = newest_postgres_bin();
        let port = common::free_port();
        let dir = common::temp_dir("fleet", &format!("postgres-{port}"));
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if as_root {
            let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap();
            assert!(chown.success(), "cannot hand {} to the postgres user", dir.display());
        }
        let postgres = Self { bin, dir, port, as_root };
        let data = postgres.dir.join("data");
        let initdb = postgres
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb: {}", String::from_utf8_lossy(&initdb.stderr));
        postgres
    }

    /// `program` from PostgreSQL's bin folder, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn start_server(&self) {
        let options = format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off", self.port, self.dir.display());
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .unwrap();
        assert!(status.status.success(), "pg_ctl start: {}", self.log());
    }

    fn stop_server(&self, mode: &str) {
        let _ = self.command("pg_ctl").arg("-D").arg(self.dir.join("data")).args(["-m", mode, "-w", "stop"]).output();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn url(&self, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` as `user` with psql; its output (unaligned, tuples only) or its error.
    fn psql(&self, user: &str, sql: &str) -> Result<String, String> {
        let output =
            Command::new("psql").args(["-X", "-q", "-A", "-t", "-d", &self.url(user), "-c", sql]).output().unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// Per box: `box|rows|distinct seqs|min seq|max seq`, one line each.
    fn shipped(&self) -> String {
        self.psql(
            "postgres",
            "SELECT box_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM fleet_queries GROUP BY 1 ORDER BY 1",
        )
        .unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/N/bin` (Debian's layout).
fn newest_postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run scripts/setup.sh --test (Debian's postgresql)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no initdb under /usr/lib/postgresql/*/bin").1
}

#[test]
fn a_box_ships_over_tls_to_a_center_that_takes_nothing_else() {
    let (postgres, ca) = Postgres::start_tls_only();
    let admin = format!("{}?sslmode=require", postgres.url("postgres"));
    let ca_file = ca.to_str().unwrap();
    // The center's certificate is checked: without its authority the connection is refused.
    let refused = common::edgeway(&["fleet", "init", "--url", &admin]);
    let text = common::output_text(&refused);
    assert!(!refused.status.success() && text.to_lowercase().contains("certificate"), "{text}");
    let init = common::edgeway(&["fleet", "init", "--url", &admin, "--ca-file", ca_file, "--box-role", "edgeway_box"]);
    assert!(init.status.success(), "{}", common::output_text(&init));

    let dir = common::temp_dir("fleet", "tls");
    let fleet = format!(
        "[fleet]\nurl = \"{}?sslmode=require\"\nbox_id = \"tls-box\"\nca_file = \"{ca_file}\"\nship_every_secs = 0.5\n",
        postgres.url("edgeway_box")
    );
    let server = serve_with(&dir.join("box.toml"), &fleet, &dir.join("box.db"), &[]);
    ask(&server, 3);
    wait_for(&postgres, "tls-box|3|3|1|3", 30);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn graded_answers_and_guard_decisions_ship_and_the_center_calibrates_from_them() {
    let postgres = Postgres::start();
    let init = common::edgeway(&["fleet", "init", "--url", &postgres.url("postgres"), "--box-role", "edgeway_box"]);
    assert!(init.status.success(), "{}", common::output_text(&init));
    let dir = common::temp_dir("fleet", "graded");
    let log = dir.join("box.db");
    // An evaluation run, edge and cloud, on the box's own log, and a decision of the extraction detector.
    let set = dir.join("plant.jsonl");
    let items: String = ["steel", "glass", "iron", "wood", "nickel", "paper", "cobalt", "water", "magnetite", "copper", "a nail",
        "a rubber band", "a paper clip", "a pencil", "a fridge magnet", "a plastic cup", "an iron key", "a cotton shirt",
        "a steel spoon", "a glass bottle", "a nickel coin", "a wooden spoon", "a compass needle", "a silver ring"]
        .iter()
        .enumerate()
        .map(|(i, thing)| {
            let answer = if i % 2 == 0 { "yes" } else { "no" };
            format!("{{\"question\": \"Is {thing} magnetic? Answer yes or no.\", \"reference\": \"{answer}\", \"choices\": [\"yes\", \"no\"]}}\n")
        })
        .collect();
    std::fs::write(&set, items).unwrap();
    let cloud = Server::start(&[]);
    let model = common::test_model().display().to_string();
    let eval = common::edgeway(&[
        "eval",
        "--set",
        set.to_str().unwrap(),
        "--route",
        "both",
        "--model",
        &model,
        "--threads",
        "1",
        "--cloud-url",
        &cloud.url("/v1"),
        "--cloud-model",
        "smollm2",
        "--log-path",
        log.to_str().unwrap(),
        "--run",
        "plant-run",
    ]);
    assert!(eval.status.success(), "{}", common::output_text(&eval));
    drop(cloud);
    let keys = edgeway_store::KeyStore::open(&log).unwrap();
    let event = edgeway_store::GuardEvent {
        ts_ms: edgeway_store::record::now_ms(),
        key_id: Some("key_x".into()),
        detector: "extraction".into(),
        action: "flag".into(),
        score: Some(0.9),
        evidence: "{\"distinct_prompts\": 900}".into(),
    };
    keys.record_event(&event).unwrap();
    drop(keys);

    // The box runs the shipped scorer (no thresholds of its own) and ships its text.
    let fleet = format!(
        "[fleet]\nurl = \"{}\"\nbox_id = \"lab\"\nship_text = true\nship_every_secs = 0.5\nconfig_every_secs = 0.5\n",
        postgres.url("edgeway_box")
    );
    let server = serve_with(&dir.join("box.toml"), &fleet, &log, &["--data-dir", dir.to_str().unwrap()]);
    wait_for(&postgres, "lab|48|48|1|48", 60);
    let deadline = Instant::now() + Duration::from_secs(10);
    let sql = "SELECT (SELECT count(*) FROM fleet_eval_results WHERE run = 'plant-run' AND question LIKE '%magnetic%' AND query_seq IS NOT NULL)
                   || '|' || (SELECT count(*) FROM fleet_guard_events WHERE detector = 'extraction' AND evidence LIKE '%900%')
                   || '|' || (SELECT count(*) FROM fleet_queries WHERE prompt_text IS NOT NULL)";
    while postgres.psql("postgres", sql).unwrap() != "48|1|48" {
        assert!(Instant::now() < deadline, "the center holds {}", postgres.psql("postgres", sql).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Calibration at the center, for the scorer the box runs: published, and applied by the box.
    let url = postgres.url("postgres");
    let elsewhere = common::edgeway(&["calibrate", "--fleet", &url, "--scorer", "shipped", "--box", "nope"]);
    let text = common::output_text(&elsewhere);
    assert!(
        !elsewhere.status.success() && text.contains("plant-run"),
        "no answers from that box; the runs named: {text}"
    );
    let calibrate = common::edgeway(&[
        "calibrate",
        "--fleet",
        &postgres.url("postgres"),
        "--scorer",
        "shipped",
        "--min-domain-items",
        "100",
        "--box",
        "lab",
        "--fleet-since-hours",
        "1",
        "--plot",
        dir.join("curve.svg").to_str().unwrap(),
    ]);
    let text = common::output_text(&calibrate);
    assert!(calibrate.status.success() && text.contains("published fleet config version 1"), "{text}");
    assert!(text.contains("scorer = \"shipped\"") && text.contains("plant-run"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while postgres.psql("postgres", "SELECT config_version FROM box_status WHERE box_id = 'lab'").unwrap() != "1" {
        assert!(Instant::now() < deadline, "the box did not apply the calibrated version within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A scorer trained at the center on one edge model's answers travels inside the version, and
    // the box routes with it: the same prompt scores differently.
    let score = || {
        let body = chat("Write a proof that there are infinitely many primes.", json!({"max_tokens": 1}));
        let (status, headers, answer) = server.post_with_headers("/v1/chat/completions", &body, &[]);
        assert_eq!(status, 200, "{answer}");
        headers["x-edgeway-score"].to_str().unwrap().to_owned()
    };
    let shipped_score = score();
    let edge_model =
        postgres.psql("postgres", "SELECT DISTINCT model FROM fleet_eval_results WHERE route = 'edge'").unwrap();
    let plot = dir.join("learned.svg");
    let calibrate_learned = |model: &str| {
        common::edgeway(&[
            "calibrate",
            "--fleet",
            &url,
            "--scorer",
            "learned",
            "--min-domain-items",
            "100",
            "--edge-model",
            model,
            "--plot",
            plot.to_str().unwrap(),
        ])
    };
    let other_model = calibrate_learned("another-model");
    let text = common::output_text(&other_model);
    assert!(!other_model.status.success() && text.contains(&format!("`{edge_model}`")), "{text}");
    let learned = calibrate_learned(&edge_model);
    let text = common::output_text(&learned);
    assert!(learned.status.success() && text.contains("version 2 with its learned scorer"), "{text}");
    assert!(!text.contains("scorer_path"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while postgres.psql("postgres", "SELECT config_version FROM box_status WHERE box_id = 'lab'").unwrap() != "2" {
        assert!(Instant::now() < deadline, "the box did not apply the learned scorer's version within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let learned_score = score();
    assert_ne!(learned_score, shipped_score);
    // The dashboard shows the routing in force, not the one the box started with.
    let (status, view) = server.get("/dashboard/api/overview");
    let scorer = view["routing"]["scorer"].as_str().unwrap_or_default();
    assert!(status == 200 && scorer.contains("fleet config version 2"), "{}", view["routing"]);
    assert_eq!(view["routing"]["calibration"]["run"], "plant-run", "{}", view["routing"]);
    // Restarted without the center, the box routes with the scorer it saved.
    drop(server);
    postgres.stop_server("fast");
    let server = serve_with(&dir.join("box.toml"), &fleet, &log, &["--data-dir", dir.to_str().unwrap()]);
    let (status, headers, answer) = server.post_with_headers(
        "/v1/chat/completions",
        &chat("Write a proof that there are infinitely many primes.", json!({"max_tokens": 1})),
        &[],
    );
    assert_eq!((status, headers["x-edgeway-score"].to_str().unwrap()), (200, learned_score.as_str()), "{answer}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `edgeway fleet dashboard` on a free loopback port, stopped when dropped.
struct FleetDashboard {
    child: std::process::Child,
    port: u16,
}

impl FleetDashboard {
    fn start(url: &str) -> Self {
        let port = common::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_edgeway"))
            .args(["fleet", "dashboard", "--url", url, "--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start edgeway fleet dashboard");
        let dashboard = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the fleet dashboard did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        dashboard
    }

    fn get(&self, path: &str) -> String {
        let response = common::client().get(format!("http://127.0.0.1:{}{path}", self.port)).send().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        if !path.contains("/api/") {
            assert!(response.headers().contains_key("content-security-policy"), "{path}: no script may run");
        }
        response.text().unwrap()
    }
}

impl Drop for FleetDashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A box: its config ships to `url` as `box_id` and looks for a newer fleet config every half
/// second; its cloud is `cloud` (shared by the boxes) and its threshold keeps every request at
/// the edge.
fn start_box(dir: &Path, url: &str, cloud: &str, box_id: &str, log: &Path) -> Server {
    let config = format!(
        "[cloud]\nbase_url = \"{cloud}\"\nmodel = \"smollm2\"\n\n[routing]\nthreshold = 1.0\n\n\
         [fleet]\nurl = \"{url}\"\nbox_id = \"{box_id}\"\nsite = \"plant-{}\"\nship_every_secs = 0.5\n\
         config_every_secs = 0.5\n",
        &box_id[box_id.len() - 1..]
    );
    let data_dir = dir.join(box_id);
    serve_with(&dir.join(format!("{box_id}.toml")), &config, log, &["--data-dir", data_dir.to_str().unwrap()])
}

/// `edgeway serve` with `config` written to `path`, logging to `log`, without embeddings.
fn serve_with(path: &Path, config: &str, log: &Path, extra: &[&str]) -> Server {
    std::fs::write(path, config).unwrap();
    let mut args = vec!["--config", path.to_str().unwrap(), "--log-path", log.to_str().unwrap(), "--no-embeddings"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Where the box answered a request, and why there.
fn route_reason(server: &Server) -> (String, String) {
    let (status, headers, body) =
        server.post_with_headers("/v1/chat/completions", &chat("Say hi.", json!({"max_tokens": 2})), &[]);
    assert_eq!(status, 200, "{body}");
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    (header("x-edgeway-route"), header("x-edgeway-route-reason"))
}

fn ask(server: &Server, n: usize) {
    for i in 0..n {
        let (status, body) =
            server.post("/v1/chat/completions", &chat(&format!("Count to {i}."), json!({"max_tokens": 2})));
        assert_eq!(status, 200, "{body}");
    }
}

/// Waits up to `secs` for the center to hold `expected` (as [`Postgres::shipped`] prints it).
fn wait_for(postgres: &Postgres, expected: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let shipped = postgres.shipped();
        if shipped == expected {
            return;
        }
        assert!(Instant::now() < deadline, "after {secs} s the center holds\n{shipped}\ninstead of\n{expected}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn boxes_ship_through_an_outage_and_a_crash_without_loss_or_duplicates() {
    let postgres = Postgres::start();
    let init = common::edgeway(&["fleet", "init", "--url", &postgres.url("postgres"), "--box-role", "edgeway_box"]);
    assert!(init.status.success(), "{}", common::output_text(&init));
    // Again: a migrated center is left as it is.
    let again = common::edgeway(&["fleet", "init", "--url", &postgres.url("postgres"), "--box-role", "edgeway_box"]);
    assert!(common::output_text(&again).contains("the fleet schema is at version"), "{}", common::output_text(&again));

    let dir = common::temp_dir("fleet", "boxes");
    let box_url = postgres.url("edgeway_box");
    // One cloud process for the four boxes.
    let cloud = Server::start(&["--no-embeddings"]);
    let cloud_url = cloud.url("/v1");
    let start_box = |box_id: &str, log: &Path| start_box(&dir, &box_url, &cloud_url, box_id, log);
    let logs: Vec<PathBuf> = (1..=4).map(|i| dir.join(format!("box-{i}.db"))).collect();
    // Box 1 is declared first so that, restarted later, its first process is dropped last.
    let mut first_box_1 = start_box("box-1", &logs[0]);
    let others: Vec<Server> = (2..=4).map(|i| start_box(&format!("box-{i}"), &logs[i - 1])).collect();
    let boxes = || std::iter::once(&first_box_1).chain(&others);
    for server in boxes() {
        ask(server, 3);
    }
    let all =
        |n: [usize; 4]| (1..=4).map(|i| format!("box-{i}|{0}|{0}|1|{0}", n[i - 1])).collect::<Vec<_>>().join("\n");
    wait_for(&postgres, &all([3; 4]), 30);
    // The dashboard says where the box ships and how it goes.
    let (status, view) = others[0].get("/dashboard/api/overview");
    assert_eq!(
        (status, view["fleet"]["box_id"].as_str(), view["fleet"]["site"].as_str()),
        (200, Some("box-2"), Some("plant-2"))
    );
    assert_eq!(view["fleet"]["center_up"], true, "{}", view["fleet"]);

    // The center goes down: every box keeps answering, the backlog shows on /metrics.
    postgres.stop_server("fast");
    for server in boxes() {
        ask(server, 3);
    }
    let metrics = common::client().get(first_box_1.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("edgeway_fleet_backlog_rows{box_id=\"box-1\"}"), "{metrics}");
    postgres.start_server();
    wait_for(&postgres, &all([6; 4]), 60);

    // Box 1 builds a backlog, and is killed (-9) while it ships it after the center returns.
    postgres.stop_server("fast");
    ask(&first_box_1, 12);
    postgres.start_server();
    std::thread::sleep(Duration::from_millis(600));
    first_box_1.kill();
    let box_1 = start_box("box-1", &logs[0]);
    ask(&box_1, 2);
    wait_for(&postgres, &all([20, 6, 6, 6]), 60);

    // Without ship_text the prompts stayed on the boxes.
    assert_eq!(
        postgres.psql("postgres", "SELECT count(*) FROM fleet_queries WHERE prompt_text IS NOT NULL").unwrap(),
        "0"
    );
    // The box role may only insert: it cannot read or change the log.
    for sql in ["SELECT count(*) FROM fleet_queries", "DELETE FROM fleet_queries", "UPDATE box_status SET backlog = 0"]
    {
        let refused = postgres.psql("edgeway_box", sql).unwrap_err();
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }

    let status = common::edgeway(&["fleet", "status", "--url", &postgres.url("postgres")]);
    let text = common::output_text(&status);
    assert!(status.status.success() && (1..=4).all(|i| text.contains(&format!("box-{i}"))), "{text}");
    assert!(text.contains("plant-2") && text.contains("100.0 %"), "{text}");

    // The fleet's aggregates: all of it (38 requests), then per site (each box is its own, plant-N).
    let stats = common::edgeway(&["stats", "--fleet", &postgres.url("postgres")]);
    let text = common::output_text(&stats);
    assert!(
        stats.status.success() && text.contains("== the whole fleet") && text.contains("== site plant-3"),
        "{text}"
    );
    assert!(text.contains("38 requests") && text.contains("20 requests"), "{text}");

    // The same numbers on the fleet's dashboard, pointed at the center.
    let dashboard = FleetDashboard::start(&postgres.url("postgres"));
    let page = dashboard.get("/fleet?window=day");
    assert!(page.contains("The whole fleet") && page.contains("Site plant-3") && page.contains("box-4"), "{page}");
    let view: serde_json::Value = serde_json::from_str(&dashboard.get("/fleet/api/overview")).unwrap();
    assert_eq!(view["window"], "hour");
    let fleet_requests: u64 =
        view["groups"][0]["stats"]["routes"].as_array().unwrap().iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!((fleet_requests, view["boxes"].as_array().unwrap().len()), (38, 4), "{view}");
    drop(dashboard);

    // Retention drops whole days: an old one goes, today stays.
    postgres.psql("postgres", "SELECT fleet_ensure_day('2020-01-01')").unwrap();
    let prune = common::edgeway(&["fleet", "prune", "--url", &postgres.url("postgres"), "--keep", "90d"]);
    let text = common::output_text(&prune);
    assert!(text.contains("dropped 1 day(s)") && text.contains("fleet_queries_20200101"), "{text}");
    wait_for(&postgres, &all([20, 6, 6, 6]), 5);

    // A new config version reaches every box within two poll intervals and changes its routing:
    // threshold 0 sends everything to the shared cloud.
    let edge = ("edge".to_owned(), "score_below_threshold".to_owned());
    assert_eq!(route_reason(&box_1), edge);
    let pushed = dir.join("calibrated.toml");
    std::fs::write(&pushed, "[server]\nport = 1\n\n[routing]\nthreshold = 0.0\n").unwrap();
    let push = common::edgeway(&[
        "fleet",
        "push",
        "--url",
        &postgres.url("postgres"),
        "--config",
        pushed.to_str().unwrap(),
        "--note",
        "test",
    ]);
    let text = common::output_text(&push);
    assert!(push.status.success() && text.contains("version 1") && !text.contains("port"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while postgres.psql("postgres", "SELECT count(*) FROM box_status WHERE config_version = 1").unwrap() != "4" {
        assert!(Instant::now() < deadline, "not every box applied version 1 within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cloud_route = ("cloud".to_owned(), "score_at_or_above_threshold".to_owned());
    for server in std::iter::once(&box_1).chain(&others) {
        assert_eq!(route_reason(server), cloud_route);
    }
    // A version calibrated for another scorer than the boxes run (they route with the transparent
    // one) is refused: they keep version 1.
    let other = dir.join("other-scorer.toml");
    std::fs::write(&other, "[routing]\nscorer = \"shipped\"\nthreshold = 0.5\n").unwrap();
    let push =
        common::edgeway(&["fleet", "push", "--url", &postgres.url("postgres"), "--config", other.to_str().unwrap()]);
    assert!(push.status.success(), "{}", common::output_text(&push));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(postgres.psql("postgres", "SELECT count(*) FROM box_status WHERE config_version = 1").unwrap(), "4");
    assert_eq!(route_reason(&box_1), cloud_route);
    // A box that starts while the center is down routes by the version it saved.
    drop(box_1);
    postgres.stop_server("fast");
    let box_1 = start_box("box-1", &logs[0]);
    assert_eq!(route_reason(&box_1), cloud_route);
    drop(box_1);
    // The fleet's dashboard with its center down: a 503 that says so, not a hang or a blank page.
    let dashboard = FleetDashboard::start(&postgres.url("postgres"));
    let response = common::client().get(format!("http://127.0.0.1:{}/fleet", dashboard.port)).send().unwrap();
    assert_eq!(response.status(), 503);
    let body = response.text().unwrap();
    assert!(body.contains("cannot read the fleet center"), "{body}");
    drop(dashboard);
    let _ = std::fs::remove_dir_all(&dir);
}
