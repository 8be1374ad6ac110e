//! The dashboard in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver, with `fantoccini`) against a real `edgeway serve` after real requests. The login
//! form refuses a wrong key and an application's key and lets an administrator in, the charts
//! draw the requests the test made, savings against a priced cloud (a second `edgeway serve`),
//! the power budget, the thresholds with their calibration and its curve are shown, the window
//! selector changes the numbers (a request two days old counts in the week, not the hour), the
//! style sheet loads under the page's Content-Security-Policy, the console stays free of
//! errors, and a screenshot is written to `target/test-output/dashboard.png`.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{chat, create_key, Server};
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = common::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed: run scripts/setup.sh --test (Debian's chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser's console messages since the last call (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// A config with a priced cloud (a second `edgeway serve`), a power budget, and calibration
/// provenance with its curve, so every section of the dashboard has something to show.
fn config_with_cloud(dir: &std::path::Path, cloud_url: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let plot = dir.join("calibration.svg");
    std::fs::write(
        &plot,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="200"><rect width="400" height="200" fill="#eef"/><text x="20" y="100">curve</text></svg>"##,
    )
    .unwrap();
    let config = dir.join("edgeway.toml");
    std::fs::write(
        &config,
        format!(
            "[cloud]\nbase_url = \"{cloud_url}\"\nmodel = \"smollm2\"\nprice_input_per_mtok = 0.15\nprice_output_per_mtok = 0.6\n\n\
             [routing]\nthreshold = 0.5\npower_budget_watts = 30\n\n\
             [routing.calibration]\nat = \"2026-12-01T10:00:00Z\"\nrun = \"browser-mix\"\nitems = 321\ntarget = 0.95\nplot = \"{}\"\n",
            plot.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn an_administrator_logs_in_and_sees_the_requests_the_test_made() {
    let cloud = Server::start(&[]);
    let dir = common::temp_dir("dashboard", "browser");
    let config = config_with_cloud(&dir, &cloud.url("/v1"));
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let marker = "Which torque does the dashboard-test bolt need?";
    // Two answered at the edge, one sent to the cloud by name.
    for model in ["smollm2", "smollm2", "cloud"] {
        let (status, body) =
            server.post("/v1/chat/completions", &chat(marker, json!({"max_tokens": 4, "model": model})));
        assert_eq!(status, 200, "{body}");
    }
    // One of those requests copied two days back: the last week counts it, the last hour not.
    common::logged_rows(&server, "SELECT id FROM queries", 3, |row| row.get::<_, i64>(0));
    let conn = rusqlite::Connection::open(&server.query_log).unwrap();
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('queries') WHERE name NOT IN ('id', 'ts_ms')")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let columns = columns.join(", ");
    conn.execute(
        &format!("INSERT INTO queries (ts_ms, {columns}) SELECT ts_ms - 2 * 86400000, {columns} FROM queries ORDER BY id LIMIT 1"),
        [],
    )
    .unwrap();
    drop(conn);
    let admin = create_key(&server, "ops", &["--admin"]);
    let app = create_key(&server, "kiosk", &[]);
    // An open server looks for new keys once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/v1/models").0 != 401 {
        assert!(Instant::now() < deadline, "the new keys were not noticed within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1800"],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let capabilities = capabilities.as_object().unwrap().clone().into_iter().collect();
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("chromedriver did not start Chromium");

        // Not logged in: the login form.
        browser.goto(&server.url("/dashboard")).await.unwrap();
        assert!(browser.current_url().await.unwrap().path().ends_with("/dashboard/login"));
        // Submits the form with `key` and waits (up to 10 s) for a page that says `expect`: the
        // browser may still show the previous page when `submit` returns.
        let log_in = |key: String, expect: &'static str| {
            let browser = browser.clone();
            async move {
                let form = browser.form(Locator::Css("form")).await.unwrap();
                form.set_by_name("key", &key).await.unwrap();
                form.submit().await.unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let page = browser.source().await.unwrap();
                    if page.contains(expect) || Instant::now() > deadline {
                        return page;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let page = log_in("ew-not-a-key".into(), "invalid API key").await;
        assert!(page.contains("invalid API key"), "{page}");
        let page = log_in(app.clone(), "not an administrator").await;
        assert!(page.contains("not an administrator"), "{page}");

        // Those refusals were 401 and 403 answers, which the console lists; from here on it must stay clean.
        browser.issue_cmd(BrowserLog).await.expect("chromedriver's browser log");

        // The administrator: the dashboard with the test's requests, their text, and charts.
        let page = log_in(admin.clone(), "requests by route").await;
        assert_eq!(browser.current_url().await.unwrap().path(), "/dashboard", "{page}");
        assert!(page.contains("requests by route") && page.contains(marker), "{page}");
        let lines = browser.find_all(Locator::Css("svg polyline")).await.unwrap();
        assert!(lines.len() >= 3, "charts drew {} lines", lines.len());
        let requests = browser.find(Locator::Css(".card .value")).await.unwrap().text().await.unwrap();
        assert!(requests.parse::<u64>().unwrap() >= 3, "{requests}");
        // The style sheet loaded under the page's policy.
        let card = browser.find(Locator::Css(".card")).await.unwrap();
        assert_eq!(card.css_value("border-top-left-radius").await.unwrap(), "6px");
        // Savings against the priced cloud, the power budget, the thresholds with their
        // calibration, and its curve, loaded as an image.
        for expected in ["saved against all-cloud", "/ 30 W", "budget", "browser-mix", "321 graded items", "every other domain"] {
            assert!(page.contains(expected), "no {expected:?} in {page}");
        }
        let plot = browser.find(Locator::Css("img.plot")).await.unwrap();
        let (_, _, width, height) = plot.rectangle().await.unwrap();
        assert!(width > 100.0 && height > 50.0, "the calibration curve did not load: {width}×{height}");

        // The window selector.
        browser.find(Locator::LinkText("last week")).await.unwrap().click().await.unwrap();
        browser.wait().for_element(Locator::XPath("//strong[text()='last week']")).await.unwrap();
        assert_eq!(browser.current_url().await.unwrap().query(), Some("window=week"));
        let page = browser.source().await.unwrap();
        assert!(page.contains("per hour") && page.contains("<strong>last week</strong>"), "{page}");
        let week = browser.find(Locator::Css(".card .value")).await.unwrap().text().await.unwrap();
        assert_eq!(week.parse::<u64>().unwrap(), requests.parse::<u64>().unwrap() + 1, "the week's requests");

        // Nothing went wrong in the browser: no script error, no policy violation, no failed load.
        let messages = browser.issue_cmd(BrowserLog).await.expect("chromedriver's browser log");
        let problems: Vec<_> = messages
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["level"] == "SEVERE" || m["level"] == "WARNING")
            .collect();
        assert!(problems.is_empty(), "the console reported problems: {problems:?}");

        let png = browser.screenshot().await.unwrap();
        let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../test-output");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("dashboard.png"), &png).unwrap();
        println!("screenshot: {}", out.join("dashboard.png").display());

        // Logging out forgets the key.
        browser.find(Locator::LinkText("log out")).await.unwrap().click().await.unwrap();
        browser.wait().for_element(Locator::Css("form")).await.unwrap();
        browser.goto(&server.url("/dashboard")).await.unwrap();
        assert!(browser.current_url().await.unwrap().path().ends_with("/dashboard/login"));
        browser.close().await.unwrap();
    });
}
