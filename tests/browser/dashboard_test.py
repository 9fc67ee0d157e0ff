"""Headless Chromium against the admin dashboard (`--admin`): the page connects its live
feed, and once HTTP load starts it shows a non-zero request rate within 3 seconds; saves a
screenshot (with a phone-sized window too).

usage: dashboard_test.py SERVER_URL DASHBOARD_URL SCREENSHOT.png
Needs Debian's chromium + chromium-driver and selenium (see .ci/run).
"""
import http.client
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def browser(profile, size):
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=" + size,
                 "--user-data-dir=" + profile):
        opts.add_argument(flag)
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(driver), options=opts)


def load(server, stop, counts):
    """Keep-alive GETs until `stop` is set."""
    u = urllib.parse.urlsplit(server)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    n = 0
    while not stop.is_set():
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
        n += 1
    counts.append(n)


def main():
    server, dash, shot = sys.argv[1], sys.argv[2], sys.argv[3]
    profile = tempfile.mkdtemp(prefix="rswoole-chrome-")
    d = browser(profile, "900,900")
    stop = threading.Event()
    counts = []
    try:
        d.set_page_load_timeout(30)
        d.get(dash)
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "status").text == "live")
        # Two snapshots with no load: the rate shows 0.
        WebDriverWait(d, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#procs tr")) >= 4)
        threads = [threading.Thread(target=load, args=(server, stop, counts)) for _ in range(2)]
        started = time.monotonic()
        for t in threads:
            t.start()
        WebDriverWait(d, 3, poll_frequency=0.1).until(
            lambda d: float(d.find_element(By.ID, "rps").text or 0) > 0)
        took = time.monotonic() - started
        rps = d.find_element(By.ID, "rps").text
        workers = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#procs tr")]
        d.save_screenshot(shot)
        d.set_window_size(390, 844)  # a phone
        time.sleep(0.2)  # let the layout settle before the phone-sized screenshot
        d.save_screenshot(shot.replace(".png", "-phone.png"))
        stop.set()
        for t in threads:
            t.join()
        print(f"dashboard: {rps} requests/s shown {took:.2f} s after the load started; "
              f"{sum(counts)} requests sent; rows: {workers}")
        assert any(w.startswith("worker 0") for w in workers), workers
        assert any(w.startswith("worker 1") for w in workers), workers
    finally:
        stop.set()
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
