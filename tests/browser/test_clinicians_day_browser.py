"""The clinician's day in real headless Chromium: worklist, recalls, body map, patient page,
image-quality hint, and zero axe-core violations (WCAG 2.1 A/AA) on every page."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from lesions import services
from lesions.models import Analysis, Lesion
from ml import quality
from tests.browser.conftest import log_in, screenshot
from tests.factories import LesionFactory, PatientFactory, lesion_image

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def png(array: np.ndarray) -> ContentFile:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return ContentFile(out.getvalue())


def finished(lesion: Lesion, probability: float, *, days_ago: int = 0, status: str = "done",
             error: str = "") -> Analysis:
    """A capture whose analysis a worker has finished, with stored mask, overlay and heat map."""
    data = lesion_image((300, 225), radius=60)
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=data, mm_per_pixel=0.05,
                                      taken_at=timezone.now() - timedelta(days=days_ago))
    analysis = capture.analyses.get()
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    mask = (image[..., 0] < 150).astype(np.uint8) * 255
    analysis.status, analysis.error = status, error
    analysis.finished_at = timezone.now()
    if status == "done":
        analysis.probability, analysis.threshold = probability, 0.3
        analysis.mask = default_storage.save(f"analyses/t-{capture.pk}-mask.png", png(mask))
        analysis.overlay = default_storage.save(f"analyses/t-{capture.pk}-overlay.png", png(image))
        analysis.heatmap = default_storage.save(f"analyses/t-{capture.pk}-heat.png", png(image[..., ::-1].copy()))
        analysis.features = {
            "asymmetry": {"axes_asymmetric": 1, "index_major": 0.1, "index_minor": 0.02, "orientation_degrees": 0},
            "border": {"compactness": 1.2, "abrupt_segments": 3},
            "colours": {"present": ["light_brown", "dark_brown"], "count": 2, "fractions": {}},
            "diameter": {"value": 6.0 + days_ago / 100, "unit": "mm", "area": 28.0, "area_unit": "mm²"},
            "framing": quality.check_framing(mask).as_dict()}
        analysis.stage_note = "Image note for the test."
    analysis.save()
    return analysis


@pytest.fixture
def clinic_day(clinician, clinic, monkeypatch):
    # The rows below are finished by hand: nothing may reach a worker that the session's
    # end-to-end tests left running (it would analyse them again).
    monkeypatch.setattr(services, "enqueue_analysis_or_flag", lambda analysis_id: True)
    monkeypatch.setattr(services, "enqueue_thumbnail", lambda capture_id: None)
    patient = PatientFactory(clinic=clinic, name="Grace Hopper", identifier="MRN-100")
    suspicious = LesionFactory(patient=patient, label="Left scapula", body_map_view="back", body_map_x=0.42,
                               body_map_y=0.3)
    finished(suspicious, 0.2, days_ago=90)
    finished(suspicious, 0.82)
    broken = LesionFactory(patient=patient, label="Right shin", body_map_view="front", body_map_x=0.4,
                           body_map_y=0.75)
    finished(broken, 0, status="failed", error="The stored image cannot be decoded.")
    LesionFactory(patient=patient, label="Scalp naevus", decision="monitor",
                  next_review_date=timezone.localdate() - timedelta(days=4))
    LesionFactory(patient=patient, label="Excised back lesion", decision="excise", assessed_at=timezone.now())
    return patient, suspicious, broken


def test_worklist_is_home_with_counts_links_and_retry(page, clinic_day):
    patient, suspicious, broken = clinic_day
    log_in(page, "alice")
    expect(page.get_by_role("heading", name=re.compile("Worklist"))).to_be_visible()
    counts = page.get_by_role("navigation", name="Worklist sections")
    # Both captures of the scapula lesion wait for review, the higher score first.
    expect(counts.get_by_role("link", name=re.compile(r"^2 analyses to review"))).to_be_visible()
    expect(counts.get_by_role("link", name=re.compile(r"^1 failed analyses"))).to_be_visible()
    expect(counts.get_by_role("link", name=re.compile(r"^1 follow-ups due or overdue"))).to_be_visible()
    expect(counts.get_by_role("link", name=re.compile(r"^1 biopsy or excision"))).to_be_visible()
    expect(page.locator("#recalls").get_by_text("overdue", exact=True)).to_be_visible()
    expect(page.locator("#unassessed tbody tr").first).to_contain_text("0.82")
    expect(page.locator("#unassessed tbody tr").nth(1)).to_contain_text("0.20")
    screenshot(page, "20-worklist")
    page.get_by_role("button", name=re.compile("Retry the analysis of Right shin")).click()
    expect(page.locator(".messages")).to_contain_text("queued again")
    expect(page.locator("#failed").get_by_text("No analysis has failed.")).to_be_visible()
    page.locator("#unassessed").get_by_role("link", name="Left scapula").first.click()
    expect(page).to_have_url(re.compile(rf"/lesions/{suspicious.pk}/#capture-\d+$"))


def test_monitor_decision_books_a_review_shown_on_case_and_worklist(page, clinic_day):
    _patient, suspicious, _broken = clinic_day
    log_in(page, "alice")
    page.goto(f"/lesions/{suspicious.pk}/")
    page.get_by_label("Clinical diagnosis").fill("atypical naevus")
    page.get_by_label("Decision").select_option("monitor")
    page.get_by_label("Follow-up interval").select_option("short")
    page.get_by_role("button", name="Save assessment").click()
    expect(page).to_have_url(re.compile(r"#assessment$"))
    expect(page.locator(".messages")).to_contain_text("Next review")
    suspicious.refresh_from_db()
    assert suspicious.next_review_date is not None
    expect(page.locator("[data-role=next-review]")).to_contain_text(f"{suspicious.next_review_date:%-d %b %Y}")
    screenshot(page, "21-case-after-monitor")


def test_body_map_click_touch_and_keyboard_store_the_site(browser, live_server, clinic_day):
    patient, _s, _b = clinic_day
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1024, "height": 900}, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, "alice")
    page.goto(f"/patients/{patient.pk}/lesions/new/")
    page.get_by_label("Label").fill("Mid back")
    back = page.locator('svg.body-figure[data-view="back"]')
    box = back.bounding_box()
    back.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.33})
    expect(page.get_by_label("Body site")).to_have_value("posterior torso")
    expect(page.locator("[data-role=body-map-status]")).to_contain_text("Placed on the back")
    screenshot(page, "22-body-map-placed")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/lesions/\d+/$"))
    lesion = Lesion.objects.get(label="Mid back")
    assert (lesion.body_site, lesion.body_map_view) == ("posterior torso", "back")
    assert lesion.body_map_x == pytest.approx(0.5, abs=0.02) and lesion.body_map_y == pytest.approx(0.33, abs=0.02)

    # Touch: a tap on the front figure's right arm.
    page.goto(f"/patients/{patient.pk}/lesions/new/")
    page.get_by_label("Label").fill("Forearm")
    front = page.locator('svg.body-figure[data-view="front"]')
    box = front.bounding_box()
    front.tap(position={"x": box["width"] * 0.235, "y": box["height"] * 0.4})
    expect(page.get_by_label("Body site")).to_have_value("upper extremity")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/lesions/\d+/$"))
    assert Lesion.objects.get(label="Forearm").body_site == "upper extremity"

    # Keyboard: focus the front figure, the point starts on the chest and moves with the arrows.
    page.goto(f"/patients/{patient.pk}/lesions/new/")
    page.get_by_label("Label").fill("Chest")
    page.get_by_role("application", name=re.compile("Front of the body")).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Body site")).to_have_value("anterior torso")
    for _ in range(4):
        page.keyboard.press("Shift+ArrowUp")  # 0.05 of the figure each: up to the head
    expect(page.get_by_label("Body site")).to_have_value("head/neck")
    # Choosing another site from the list drops the point, so the two never disagree.
    page.get_by_label("Body site").select_option("nail")
    expect(page.locator("[data-role=body-map-status]")).to_contain_text("Point removed")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/lesions/\d+/$"))
    chest = Lesion.objects.get(label="Chest")
    assert chest.body_site == "nail" and chest.body_map_view == ""
    context.close()


def test_patient_page_markers_link_to_cases_and_summary_prints(page, clinic_day):
    patient, suspicious, _b = clinic_day
    log_in(page, "alice")
    page.goto(f"/patients/{patient.pk}/")
    marker = page.get_by_role("link", name=re.compile(r"Left scapula \(Monitoring, latest score 0\.82\)"))
    expect(marker).to_have_class(re.compile("score-high"))
    expect(page.get_by_role("img", name="Scores over time: 0.20, 0.82")).to_be_visible()
    expect(page.get_by_text("overdue", exact=True)).to_be_visible()
    screenshot(page, "23-patient-page")
    marker.click()
    expect(page).to_have_url(re.compile(rf"/lesions/{suspicious.pk}/$"))
    page.goto(f"/patients/{patient.pk}/summary/")
    page.emulate_media(media="print")
    expect(page.get_by_role("heading", name=re.compile("Patient summary"))).to_be_visible()
    expect(page.locator(".site-header nav")).to_be_hidden()
    expect(page.locator("article.summary-lesion")).to_have_count(4)
    screenshot(page, "24-patient-summary-print")


def test_webcam_quality_measure_matches_the_server(page, clinic_day):
    _p, suspicious, _b = clinic_day
    log_in(page, "alice")
    page.goto(f"/lesions/{suspicious.pk}/")
    page.wait_for_function("() => window.lesionTrackQuality !== undefined")
    verdicts = page.evaluate("""() => {
        const make = (draw) => { const c = document.createElement('canvas'); c.width = 200; c.height = 150;
                                 const x = c.getContext('2d'); draw(x); return c; };
        const flat = make(x => { x.fillStyle = '#c8a090'; x.fillRect(0, 0, 200, 150); });
        const sharp = make(x => { for (let i = 0; i < 200; i += 4) { x.fillStyle = i % 8 ? '#222' : '#eee';
                                                                      x.fillRect(i, 0, 4, 150); } });
        const white = make(x => { x.fillStyle = '#fff'; x.fillRect(0, 0, 200, 150); });
        const limits = { minLaplacianVariance: 2.5, maxClippedHighlights: 0.1, maxCrushedShadows: 0.3 };
        const q = window.lesionTrackQuality;
        return [flat, sharp, white].map(c => q.verdict(q.measure(c, 200, 150), limits));
    }""")
    assert verdicts[0] == ["blurred: hold still and focus"]
    assert verdicts[1] == []
    assert "over-exposed: less light or glare" in verdicts[2]
    webcam = page.locator("#webcam")
    expect(webcam).to_have_attribute("data-min-laplacian-variance", "2.5")


def axe_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
                           ".then(r => ({passes: r.passes.length, violations: r.violations.map(v => ({id: v.id,"
                           " impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))}))",
                           WCAG_TAGS)
    assert result["passes"] > 5, "axe checked nothing on this page"
    return result["violations"]


def test_every_page_has_no_axe_violations(browser, live_server, clinic_day, clinician):
    if not AXE.is_file():
        pytest.fail(f"axe-core missing at {AXE}: run `npm ci` (make test does)")
    patient, suspicious, _b = clinic_day
    # The app's CSP forbids inline scripts, which is how add_script_tag injects axe: this
    # context alone lets the test's own script in; the pages are otherwise unchanged.
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1024, "height": 768}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/accounts/login/")
    found = {"login": axe_violations(page)}
    log_in(page, "alice")
    pages = {
        "worklist": "/", "patients": "/patients/", "new-patient": "/patients/new/",
        "patient": f"/patients/{patient.pk}/", "patient-summary": f"/patients/{patient.pk}/summary/",
        "edit-patient": f"/patients/{patient.pk}/edit/", "new-lesion": f"/patients/{patient.pk}/lesions/new/",
        "case": f"/lesions/{suspicious.pk}/", "edit-lesion": f"/lesions/{suspicious.pk}/edit/",
        "compare": f"/lesions/{suspicious.pk}/compare/", "report": f"/lesions/{suspicious.pk}/report/",
    }
    for name, url in pages.items():
        response = page.goto(url)
        assert response.status == 200, url
        found[name] = axe_violations(page)
        screenshot(page, f"30-axe-{name}")
    # The case page's other layers, as a clinician would switch to them.
    page.goto(f"/lesions/{suspicious.pk}/")
    page.get_by_role("button", name="Heat map").first.click()
    found["case-heatmap"] = axe_violations(page)
    context.close()
    assert {name: v for name, v in found.items() if v} == {}


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _rgb(css: str) -> tuple[int, int, int]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def test_focus_ring_contrast_banner_landmark_and_layer_alt_text(page, clinic_day):
    _p, suspicious, _b = clinic_day
    log_in(page, "alice")
    page.goto(f"/lesions/{suspicious.pk}/")
    # The banner lives in the header landmark.
    expect(page.get_by_role("banner").get_by_text("Decision support, not a diagnosis.")).to_be_visible()
    # Focus ring: 3:1 against the page background and the white cards (WCAG 2.1 SC 1.4.11).
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    ring = page.evaluate("() => { const s = getComputedStyle(document.activeElement);"
                         " return [s.outlineColor, s.outlineStyle, s.outlineWidth]; }")
    assert ring[1] != "none" and float(ring[2].rstrip("px")) >= 2
    body = _rgb(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))
    for background in (body, (255, 255, 255)):
        assert contrast(_rgb(ring[0]), background) >= 3.0, (ring, background)
    # Alt text follows the layer shown; the heat map has a legend.
    card = page.locator("article.capture").first
    image = card.locator("img.capture-image")
    expect(image).to_have_attribute("alt", re.compile("outline"))
    card.get_by_role("button", name="Mask").click()
    expect(image).to_have_attribute("alt", re.compile("mask"))
    card.get_by_role("button", name="Heat map").click()
    expect(image).to_have_attribute("alt", re.compile("heat map"))
    expect(card.locator("[data-role=heat-legend]")).to_be_visible()
    card.get_by_role("button", name="Image only").click()
    expect(image).to_have_attribute("alt", re.compile("without overlays"))
    expect(card.locator("[data-role=heat-legend]")).to_be_hidden()


def test_compare_view_syncs_zoom_aligns_fade_draws_both_outlines_and_keys(page, clinic_day):
    _p, suspicious, _b = clinic_day
    finished(suspicious, 0.9, days_ago=-1)  # a third capture, so there is a previous pair
    log_in(page, "alice")
    page.goto(f"/lesions/{suspicious.pk}/compare/")
    stages = page.locator(".stage")
    expect(stages).to_have_count(2)
    page.get_by_role("button", name="Zoom in").click()
    page.get_by_role("button", name="Zoom in").click()
    transforms = stages.evaluate_all("els => els.map(e => e.style.transform)")
    assert transforms[0] == transforms[1] and "scale(1.5625)" in transforms[0]
    viewport = page.locator(".viewport").first
    box = viewport.bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + 90, box["y"] + 70)
    page.mouse.up()
    transforms = stages.evaluate_all("els => els.map(e => e.style.transform)")
    assert transforms[0] == transforms[1] and "translate(" in transforms[0]
    # The earlier outline is drawn, aligned, on the later image.
    expect(page.locator("[data-role=earlier-outline]")).to_have_attribute("data-outline-pixels", re.compile(r"[1-9]\d*"))
    screenshot(page, "25-compare-side-by-side")
    page.get_by_role("button", name="Fade").click()
    later = page.locator(".aligned-later")
    expect(later).to_be_visible()
    # Same image and calibration: the later capture lies exactly on the earlier one.
    assert later.evaluate("e => [e.style.left, e.style.top, e.style.width]") == ["0%", "0%", "100%"]
    page.get_by_label("Later capture opacity").fill("80")
    expect(later).to_have_css("opacity", "0.8")
    screenshot(page, "26-compare-fade")
    page.get_by_role("button", name="Side by side").click()
    expect(page.get_by_role("img", name=re.compile("^Later capture"))).to_be_visible()
    expect(page.get_by_role("group", name="Timeline")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile(r"^Compare with "))).to_have_count(3)
    url = page.url
    page.locator("body").press("ArrowLeft")
    expect(page).not_to_have_url(url)
    expect(page.get_by_role("link", name="Next capture →")).to_be_visible()
    page.locator("body").press("ArrowRight")
    expect(page.get_by_role("link", name="← Previous capture")).to_be_visible()


def test_case_page_at_a_glance_keeps_unsaved_ticks_and_returns_to_the_section(page, clinic_day):
    _p, suspicious, _b = clinic_day
    log_in(page, "alice")
    page.goto(f"/lesions/{suspicious.pk}/")
    glance = page.locator("[data-role=glance]")
    expect(glance.locator("[data-role=glance-score]")).to_contain_text("0.82")
    expect(glance.locator("[data-role=glance-score]")).to_contain_text("at or above the threshold 0.30")
    expect(glance.locator("[data-role=glance-review]")).to_contain_text("none booked")
    # Newest capture first and open; the older one collapsed.
    newest = suspicious.captures.order_by("-taken_at").first()
    expect(page.locator("article.capture").first).to_have_attribute("id", f"capture-{newest.pk}")
    older = page.locator("[data-role=older-captures]")
    expect(older).not_to_have_attribute("open", "")
    expect(older.locator("article.capture")).to_be_hidden()
    screenshot(page, "27-case-at-a-glance")

    # Tick structures without saving them, then save the assessment: the ticks survive.
    card = page.locator(f"#capture-{newest.pk}")
    card.get_by_label("Dots").check()
    card.get_by_label("Streaks").check()
    page.get_by_label("Clinical diagnosis").fill("atypical naevus")
    page.get_by_label("Decision").select_option("monitor")
    page.get_by_role("button", name="Save assessment").click()
    expect(page).to_have_url(re.compile(r"#assessment$"))
    expect(page.locator("#assessment")).to_be_in_viewport()
    card = page.locator(f"#capture-{newest.pk}")
    expect(card.get_by_label("Dots")).to_be_checked()
    expect(card.get_by_label("Streaks")).to_be_checked()
    expect(card.locator("[data-role=draft-notice]")).to_contain_text("not saved yet")
    # Saving them goes back to that capture, and the notice goes.
    card.get_by_role("button", name="Save structures").click()
    expect(page).to_have_url(re.compile(rf"#capture-{newest.pk}$"))
    newest.refresh_from_db()
    assert newest.structures == ["dots", "streaks"]
    expect(page.locator("[data-role=draft-notice]")).to_have_count(0)


def test_phone_case_page_leads_with_capture_and_app_installs(browser, live_server, clinic_day):
    _p, suspicious, _b = clinic_day
    for days in (30, 60, 120, 180):
        finished(suspicious, 0.3, days_ago=days)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, "alice")
    page.goto(f"/lesions/{suspicious.pk}/")
    add = page.get_by_role("heading", name="Add a capture")
    captures = page.get_by_role("heading", name=re.compile(r"^Captures"))
    assert add.bounding_box()["y"] < captures.bounding_box()["y"]
    file_input = page.get_by_label("Images (JPEG or PNG, several allowed)")
    expect(file_input).to_have_attribute("capture", "environment")
    expect(file_input).to_have_attribute("accept", "image/*")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    screenshot(page, "28-phone-case-collapsed")
    sections = page.evaluate("() => Array.from(document.querySelectorAll('main > *, .case-layout > *'))"
                             ".map(e => [e.tagName + '#' + e.id + '.' + e.className, e.getBoundingClientRect().height])")
    # Six captures, the older five collapsed: 4,457 px measured before the clinical-safety work added
    # Stolz's counting rule to every structure checkbox and the melanocytic step (5,002 px after it);
    # the issue found ~7,000 px for fewer captures. The budget keeps the page well under that.
    assert height < 5200, (height, sections)
    page.get_by_text(re.compile(r"Earlier captures \(5\)")).tap()
    expect(page.locator("[data-role=older-captures] article.capture").first).to_be_visible()
    screenshot(page, "28-phone-case")
    manifest_url = page.locator("link[rel=manifest]").get_attribute("href")
    manifest = page.request.get(manifest_url)
    assert manifest.ok and "manifest" in manifest.headers["content-type"]
    data = manifest.json()
    assert data["display"] == "standalone" and data["start_url"] == "/"
    sizes = {icon["sizes"] for icon in data["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in data["icons"]:
        assert page.request.get(manifest_url.rsplit("/", 1)[0] + "/" + icon["src"]).ok
    context.close()
