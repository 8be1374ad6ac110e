"""Logs in to a running edgeway's dashboard as a new administrator and captures the whole page.

Run by bench/dashboard-screenshot.sh after its traffic, with EDGEWAY_URL (the server) and
EDGEWAY_LOG (its query log, where the administrator's key is created) set.

Usage: dashboard_screenshot.py PNG [WINDOW]
"""

import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main():
    png, window = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "hour"
    url, log = os.environ["EDGEWAY_URL"], os.environ["EDGEWAY_LOG"]
    key = subprocess.run(
        ["target/release/edgeway", "keys", "create", f"screenshot-{int(time.time())}", "--admin", "--log-path", log],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    time.sleep(2)  # the server looks for new keys once a second
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{url}/dashboard/login")
        driver.find_element(By.NAME, "key").send_keys(key)
        driver.find_element(By.CSS_SELECTOR, "form").submit()
        WebDriverWait(driver, 20).until(lambda d: d.current_url.rstrip("/").endswith("/dashboard"))
        driver.get(f"{url}/dashboard?window={window}")
        # The whole page down to the first rows of the latest requests (all 50 make it very long).
        height = min(driver.execute_script("return document.documentElement.scrollHeight"), 2350)
        driver.set_window_size(1280, height + 120)
        driver.save_screenshot(png)
        print(f"screenshot: {png} (1280×{height})")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
