"""A real edge (real store, model, guard) and a real cloud on loopback, a seeded
profile with a user key and an admin key, and headless Chromium driven by Selenium.

Chromium and chromedriver are Debian's (`apt-get install chromium chromium-driver`):
Selenium is pointed at them, so it never downloads a browser or a driver.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud_service.settings import CloudSettings
from cloud_service.testing import shared_default_engine, start_cloud_server
from cogenesis.servers import running_server
from edge_agent.app import create_app
from edge_agent.guard import PrivacyGuard
from edge_agent.prefix_cache import PrefixCache
from edge_agent.services import EdgeServices, build_services
from edge_agent.settings import EdgeSettings
from edge_agent.slm import SmallModel, SmallModelPool
from edge_agent.store.schemas import KeyIn, ProfileIn, WritingSampleIn
from shared_protocol.defaults import default_gguf_path

CHROMIUM = os.environ.get("COGENESIS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("COGENESIS_CHROMEDRIVER", "/usr/bin/chromedriver")
CLOUD_TOKEN = "browser-test-token-" + "x" * 16
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


@dataclass
class Edge:
    url: str
    services: EdgeServices
    user_id: str
    user_key: str
    admin_key: str


@pytest.fixture(scope="module")
def cloud_url() -> Iterator[str]:
    url, stop = start_cloud_server(CloudSettings(token=CLOUD_TOKEN), shared_default_engine())
    try:
        yield url
    finally:
        stop()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, cloud_url: str) -> Iterator[Edge]:
    home = tmp_path_factory.mktemp("edge")
    settings = EdgeSettings(
        db_url=f"sqlite:///{home / 'edge.db'}",
        cloud_url=cloud_url,
        cloud_token=CLOUD_TOKEN,
        max_tokens=24,
        sketch_max_tokens=48,
        cloud_timeout_s=60,
    )
    cache = PrefixCache(max_entries=2)
    pool = SmallModelPool(
        lambda: SmallModel(default_gguf_path(), n_ctx=2048, prefix_cache=cache), size=1
    )
    services = build_services(settings, pool=pool, guard=PrivacyGuard())
    store = services.store
    profile = store.profiles.create_user(
        ProfileIn(
            name="Ada Moss",
            age="41",
            occupation="Florist",
            location="Tacoma, Washington",
            private_information="Volunteers at the Harbor animal shelter",
            history=[WritingSampleIn(title="Spring", text="Tulips again, and rain.")],
        )
    )
    user_key = store.keys.create(KeyIn(scope="user", user_id=profile.id)).secret
    admin_key = store.keys.create(KeyIn(scope="admin", label="browser test")).secret
    with running_server(create_app(settings, services=services)) as url:
        yield Edge(url, services, profile.id, user_key, admin_key)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(
            f"the browser test needs {CHROMIUM} and {CHROMEDRIVER}: "
            "apt-get install -y chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the test saves its screenshots: a temporary folder, or the folder named by
    $COGENESIS_SCREENSHOTS (the README's pictures come from `COGENESIS_SCREENSHOTS=docs`)."""
    folder = Path(os.environ.get("COGENESIS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
