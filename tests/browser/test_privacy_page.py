"""The privacy page in a real headless Chromium: sign in with a key, find a sketch
request's exact payload with its placeholder highlighted, edit a field, delete the
profile, and the ledger still verifies."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from edge_agent.store.schemas import KeyIn, ProfileIn
from tests.browser.conftest import Edge

pytestmark = pytest.mark.slow

TASK = "Write a short birthday toast for Ada Moss, who loves tulips."


def wait(driver: WebDriver, timeout_s: float = 30) -> WebDriverWait:
    # A form's answer replaces the page: what was read of the old one may go stale mid-read.
    return WebDriverWait(
        driver, timeout_s, ignored_exceptions=(StaleElementReferenceException, JavascriptException)
    )


def shoot(driver: WebDriver, folder: Path, name: str) -> Path:
    """A full-page screenshot: the window grows to the page's height first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 800), 4000))
    driver.execute_script("window.scrollTo(0, 0)")
    path = folder / name
    assert driver.save_screenshot(str(path)), f"no screenshot at {path}"
    driver.set_window_size(1280, 1000)
    return path


def sign_in(driver: WebDriver, edge: Edge, key: str) -> None:
    driver.get(edge.url + "/")
    field = wait(driver).until(ready.presence_of_element_located((By.ID, "key")))
    # The label names the field, for screen readers and for this test.
    assert driver.find_element(By.CSS_SELECTOR, "label[for=key]").text == "API key"
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "form[action='/page/sign-in'] button").click()
    wait(driver).until(ready.presence_of_element_located((By.ID, "verify-button")))


def flashes(driver: WebDriver) -> list[str]:
    script = "return Array.from(document.querySelectorAll('.flash'), e => e.textContent)"
    return [text.strip() for text in driver.execute_script(script)]


def test_the_privacy_page_end_to_end(browser: WebDriver, edge: Edge, screenshots: Path) -> None:
    driver, store = browser, edge.services.store
    answer = httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {edge.user_key}"},
        json={
            "model": "cogenesis-sketch",
            "user": edge.user_id,
            "messages": [{"role": "user", "content": TASK}],
        },
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    logits = httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {edge.user_key}"},
        json={
            "model": "cogenesis-logits",
            "user": edge.user_id,
            "max_tokens": 12,
            "messages": [{"role": "user", "content": "Write one line about rain."}],
        },
        timeout=300,
    )
    assert logits.status_code == 200, logits.text
    (sketch,) = [e for e in store.ledger.query(user_id=edge.user_id)[0] if e.mode == "sketch"]
    assert b"<PERSON_1>" in sketch.payload and b"Ada Moss" not in sketch.payload

    # Load the page: the sign-in form; a wrong key is refused there, politely.
    driver.get(edge.url + "/")
    assert driver.title.startswith("Sign in")
    shoot(driver, screenshots, "privacy-page-sign-in.png")
    driver.find_element(By.ID, "key").send_keys("cgk_not_a_key")
    driver.find_element(By.CSS_SELECTOR, "form[action='/page/sign-in'] button").click()
    assert (
        "not valid"
        in wait(driver).until(ready.presence_of_element_located((By.ID, "signin-error"))).text
    )

    # Sign in with the user's key: a session cookie scripts cannot read.
    sign_in(driver, edge, edge.user_key)
    cookie = driver.get_cookie("cogenesis_page")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert driver.execute_script("return document.cookie") == ""

    # The sketch request: its exact payload, with the placeholder highlighted.
    entry = driver.find_element(By.ID, f"entry-{sketch.id}")
    assert entry.get_attribute("data-mode") == "sketch"
    entry.find_element(By.TAG_NAME, "summary").click()
    payload = entry.find_element(By.CSS_SELECTOR, "pre.payload")
    wait(driver).until(lambda _: payload.is_displayed())
    assert payload.text == sketch.payload_text
    marks = [m.text for m in payload.find_elements(By.CSS_SELECTOR, "mark.ph")]
    assert "<PERSON_1>" in marks  # numbered: the same name is one placeholder
    findings = entry.find_element(By.CSS_SELECTOR, ".findings").text
    assert "PERSON" in findings
    assert "delivered" in entry.find_element(By.CSS_SELECTOR, ".badge").text
    assert driver.find_element(By.CSS_SELECTOR, "svg.chart rect.bar")
    shoot(driver, screenshots, "privacy-page.png")

    # Edit a field of the profile.
    occupation = driver.find_element(By.ID, "f-occupation")
    occupation.clear()
    occupation.send_keys("Beekeeper")
    driver.find_element(By.ID, "save-profile").click()
    wait(driver).until(lambda d: any("Saved the profile" in f for f in flashes(d)))
    assert store.profiles.get_user(edge.user_id).occupation == "Beekeeper"
    assert driver.find_element(By.ID, "f-occupation").get_attribute("value") == "Beekeeper"

    # Verify the ledger, with the one button.
    driver.find_element(By.ID, "verify-button").click()
    wait(driver).until(lambda d: any("The ledger is intact" in f for f in flashes(d)))
    assert any("no private terms" in f for f in flashes(driver)), flashes(driver)

    # Delete all my data, the ledger too: the page asks once more.
    driver.find_element(By.ID, "include-ledger").click()
    driver.find_element(By.ID, "confirm-delete").click()
    driver.find_element(By.ID, "delete-button").click()
    wait(driver).until(ready.alert_is_present()).accept()
    done = wait(driver).until(ready.presence_of_element_located((By.ID, "message-title")))
    assert done.text == "Your data is deleted"
    assert "ledger entries" in driver.find_element(By.CSS_SELECTOR, ".flash").text
    with pytest.raises(Exception, match="no profile"):
        store.profiles.get_user(edge.user_id)
    assert store.ledger.query(user_id=edge.user_id)[1] == 0

    # The chain recorded the erasure and still verifies, seen by an admin.
    report = store.ledger.verify()
    assert report.ok and report.erased >= 1, report.problems
    # The user's key went with the profile, and so did the session.
    driver.get(edge.url + "/")
    assert driver.find_element(By.ID, "key")
    sign_in(driver, edge, edge.admin_key)
    assert [o.text for o in Select(driver.find_element(By.ID, "user")).options] == ["Everyone"]
    driver.find_element(By.ID, "verify-button").click()
    wait(driver).until(lambda d: any("The ledger is intact" in f for f in flashes(d)))
    shoot(driver, screenshots, "privacy-page-verified.png")


def test_every_form_needs_the_sessions_csrf_token(edge: Edge) -> None:
    with httpx.Client(base_url=edge.url, follow_redirects=False) as client:
        signed_in = client.post("/page/sign-in", data={"key": edge.admin_key})
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get("/")
        assert page.status_code == 200 and "Verify the ledger" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")

        for form in ({}, {"csrf": "forged"}):
            refused = client.post("/page/verify", data=form)
            assert refused.status_code == 403 and "CSRF" in refused.text
        token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert client.post("/page/verify", data={"csrf": token}).status_code == 303

    # Without the session cookie the same token is worth nothing.
    anonymous = httpx.post(f"{edge.url}/page/verify", data={"csrf": token})
    assert anonymous.status_code == 401


def test_a_user_key_cannot_reach_another_user(edge: Edge) -> None:
    other = edge.services.store.profiles.create_user(ProfileIn(name="Ben Ortiz"))
    key = edge.services.store.keys.create(KeyIn(scope="user", user_id=other.id)).secret
    with httpx.Client(base_url=edge.url, follow_redirects=False) as client:
        client.post("/page/sign-in", data={"key": key})
        page = client.get("/", params={"user": "someone-else"})
        assert "Ben Ortiz" in page.text and 'id="user"' not in page.text  # no picker
        token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        refused = client.post(
            "/page/delete", data={"csrf": token, "user": "someone-else", "confirm": "1"}
        )
        assert refused.status_code == 403
        assert edge.services.store.profiles.get_user(other.id).name == "Ben Ortiz"
