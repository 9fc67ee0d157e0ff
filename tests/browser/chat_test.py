"""Headless Chromium against examples/chat.rs: two browsers load the chat page, a message
typed in one appears in both (and the other way round); saves a screenshot.

usage: chat_test.py URL SCREENSHOT.png [PROTOCOL]
With PROTOCOL (e.g. "h2"), each page must have come over it (the navigation entry's
`nextHopProtocol`: "h2" for HTTP/2 by ALPN, "http/1.1" otherwise).
Needs Debian's chromium + chromium-driver and selenium (see .ci/run).
"""
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def browser(profile):
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=900,700",
                 "--ignore-certificate-errors",
                 "--user-data-dir=" + profile):
        opts.add_argument(flag)
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(driver), options=opts)


def say(d, text):
    box = d.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    d.find_element(By.ID, "send").click()


def main():
    url, shot = sys.argv[1], sys.argv[2]
    want_proto = sys.argv[3] if len(sys.argv) > 3 else None
    dirs = [tempfile.mkdtemp(prefix="rswoole-chrome-") for _ in range(2)]
    drivers = []
    try:
        for p in dirs:
            d = browser(p)
            d.set_page_load_timeout(30)
            drivers.append(d)
            d.get(url)
            WebDriverWait(d, 20).until(
                lambda d: d.find_element(By.ID, "status").text.startswith("connected"))
            proto = d.execute_script(
                "return performance.getEntriesByType('navigation')[0].nextHopProtocol")
            assert want_proto is None or proto == want_proto, (proto, want_proto)
            print("chat_test: page loaded over", proto)
        a, b = drivers
        say(a, "hello from tab A")
        for d in drivers:
            WebDriverWait(d, 20).until(
                lambda d: "hello from tab A" in d.find_element(By.ID, "msg").text)
        say(b, "hi A, this is tab B")
        for d in drivers:
            WebDriverWait(d, 20).until(
                lambda d: "this is tab B" in d.find_element(By.ID, "msg").text)
        texts = [d.find_element(By.ID, "msg").text for d in drivers]
        for t in texts:
            lines = [l for l in t.splitlines() if l]
            assert len(lines) == 2, lines
            assert lines[0].startswith("from") and lines[0].endswith(":hello from tab A"), lines
            assert lines[1].endswith(":hi A, this is tab B"), lines
        a.save_screenshot(shot)
        print("chat_test: OK; both tabs show:", texts[0].replace("\n", " | "))
        print("chat_test: screenshot", shot)
    finally:
        for d in drivers:
            d.quit()
        for p in dirs:
            shutil.rmtree(p, ignore_errors=True)


if __name__ == "__main__":
    main()
