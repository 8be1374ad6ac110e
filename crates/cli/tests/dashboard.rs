//! The dashboard in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver, with `fantoccini`) against a real `edgeway serve` after real requests. The login
//! form refuses a wrong key and an application's key and lets an administrator in, the charts
//! draw the requests the test made, the window selector changes what is shown, the style
//! sheet loads under the page's Content-Security-Policy, and a screenshot is written to
//! `target/test-output/dashboard.png`.

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

#[test]
fn an_administrator_logs_in_and_sees_the_requests_the_test_made() {
    let server = Server::start(&[]);
    let marker = "Which torque does the dashboard-test bolt need?";
    for _ in 0..3 {
        let (status, body) = server.post("/v1/chat/completions", &chat(marker, json!({"max_tokens": 4})));
        assert_eq!(status, 200, "{body}");
    }
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

        // The window selector.
        browser.find(Locator::LinkText("last week")).await.unwrap().click().await.unwrap();
        browser.wait().for_element(Locator::XPath("//strong[text()='last week']")).await.unwrap();
        assert_eq!(browser.current_url().await.unwrap().query(), Some("window=week"));
        let page = browser.source().await.unwrap();
        assert!(page.contains("per hour") && page.contains("<strong>last week</strong>"), "{page}");

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
