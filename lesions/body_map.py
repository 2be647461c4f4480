"""The body map: front and back figures, each divided into regions that name an ISIC anatomic site.

One definition of the regions: static/img/body-front.svg and body-back.svg draw exactly these
shapes (tests/lesions/test_body_map.py checks the files against this table), the browser reads
each shape's data-site to set the select list, and the server derives the site from the stored
point with region_at(), so the select list and the map cannot disagree.

Coordinates are the figures' own (viewBox 0 0 200 400); a stored point is a fraction (0..1)
of the figure's width and height. Sites are the ISIC archive's anatom_site_general values;
the figures are in the anatomical position (palms forward), so the front hands are palms and
the back feet are soles.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 200.0, 400.0


@dataclass(frozen=True)
class Region:
    name: str
    site: str
    shape: str  # "rect" (x, y, w, h) or "ellipse" (cx, cy, rx, ry)
    geometry: tuple[float, float, float, float]

    def contains(self, x: float, y: float) -> bool:
        a, b, c, d = self.geometry
        if self.shape == "rect":
            return a <= x <= a + c and b <= y <= b + d
        return ((x - a) / c) ** 2 + ((y - b) / d) ** 2 <= 1.0


def _common(torso_site: str, hand_site: str, foot_site: str) -> list[Region]:
    # Earlier regions win where shapes touch: the lateral strips before the torso they border.
    return [
        Region("head", "head/neck", "ellipse", (100, 32, 22, 27)),
        Region("neck", "head/neck", "rect", (90, 56, 20, 12)),
        Region("right side of the trunk", "lateral torso", "rect", (60, 68, 10, 132)),
        Region("left side of the trunk", "lateral torso", "rect", (130, 68, 10, 132)),
        Region("trunk", torso_site, "rect", (70, 68, 60, 132)),
        Region("right arm", "upper extremity", "rect", (36, 70, 22, 140)),
        Region("left arm", "upper extremity", "rect", (142, 70, 22, 140)),
        Region("right hand", hand_site, "rect", (34, 212, 26, 30)),
        Region("left hand", hand_site, "rect", (140, 212, 26, 30)),
        Region("right leg", "lower extremity", "rect", (64, 222, 34, 146)),
        Region("left leg", "lower extremity", "rect", (102, 222, 34, 146)),
        Region("right foot", foot_site, "rect", (60, 370, 38, 22)),
        Region("left foot", foot_site, "rect", (102, 370, 38, 22)),
    ]


REGIONS: dict[str, list[Region]] = {
    "front": [*_common("anterior torso", "palms/soles", "lower extremity"),
              Region("groin", "oral/genital", "rect", (86, 200, 28, 22)),
              Region("hips", "anterior torso", "rect", (64, 200, 72, 22))],
    "back": [*_common("posterior torso", "upper extremity", "palms/soles"),
             Region("buttocks", "posterior torso", "rect", (64, 200, 72, 22))],
}


def region_at(view: str, x: float, y: float) -> Region | None:
    """The region under a point given as fractions of the figure (None: off the body)."""
    fx, fy = x * WIDTH, y * HEIGHT
    for region in REGIONS.get(view, []):
        if region.contains(fx, fy):
            return region
    return None


@dataclass(frozen=True)
class Marker:
    """A lesion on the map: its point (fractions of the figure), link, accessible name and CSS class."""

    x: float
    y: float
    href: str
    label: str
    css_class: str


def _shapes(view: str) -> list[str]:
    shapes = []
    for region in REGIONS[view]:
        a, b, c, d = (f"{v:g}" for v in region.geometry)
        attrs = (f'x="{a}" y="{b}" width="{c}" height="{d}"' if region.shape == "rect"
                 else f'cx="{a}" cy="{b}" rx="{c}" ry="{d}"')
        shapes.append(f'  <{region.shape} class="region" {attrs} data-site="{region.site}" '
                      f'data-region="{region.name}"><title>{region.name}</title></{region.shape}>')
    return shapes


def render_svg(view: str) -> str:
    """The figure as SVG (how static/img/body-<view>.svg was written: `python -m lesions.body_map`)."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:g} {HEIGHT:g}" '
            f'class="body-figure" data-view="{view}">\n' + "\n".join(_shapes(view)) + "\n</svg>\n")


def render_inline_svg(view: str, markers: list[Marker] = (), *, interactive: bool = False,
                      label: str = "") -> str:
    """The figure for a page, with its lesions as linked markers; `interactive` makes it the
    focusable input of the lesion form (static/js/bodymap.js). Text is escaped here."""
    title = label or f"Body map, {view}"
    attrs = (f'tabindex="0" role="application" aria-label="{escape(title)}" '
             f'aria-describedby="body-map-help"' if interactive else f'role="group" aria-label="{escape(title)}"')
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:g} {HEIGHT:g}" '
             f'class="body-figure{" interactive" if interactive else ""}" data-view="{view}" {attrs}>',
             *_shapes(view)]
    for marker in markers:
        cx, cy = marker.x * WIDTH, marker.y * HEIGHT
        if interactive:  # the form's own point: not a link
            parts.append(f'  <circle class="{escape(marker.css_class)}" cx="{cx:.1f}" cy="{cy:.1f}" r="6"/>')
            continue
        parts.append(f'  <a href="{escape(marker.href)}" class="marker {escape(marker.css_class)}" '
                     f'aria-label="{escape(marker.label)}"><title>{escape(marker.label)}</title>'
                     f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6"/></a>')
    parts.append("</svg>")
    return "\n".join(parts)


if __name__ == "__main__":
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "static" / "img"
    folder.mkdir(exist_ok=True)
    for name in REGIONS:
        (folder / f"body-{name}.svg").write_text(render_svg(name))
