"""Finding a source's files: explicit names first, then the names a source usually uses."""

from __future__ import annotations

from pathlib import Path

from rlrec.utils.errors import ConfigError, DataError


def existing_folder(path: str | Path, what: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise DataError(f"{folder}: {what} not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} should be a folder, found a file")
    return folder


def explicit_file(folder: Path, name: str, what: str) -> Path:
    """`name` relative to `folder` (or absolute), which must exist."""
    path = Path(name)
    if not path.is_absolute():
        path = folder / path
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    return path


def first_existing(folder: Path, names: list[str], what: str) -> Path:
    """The first of `names` present in `folder`; the error lists every name tried."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {what} found; looked for {', '.join(names)}")


def single_match(folder: Path, patterns: list[str], what: str, hint: str) -> Path:
    """The one file in `folder` matching any of `patterns`; none or several is an error saying how to choose."""
    found = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    if not found:
        raise DataError(f"{folder}: no {what} found; looked for {', '.join(patterns)}")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ConfigError(f"{folder}: several {what}s ({names}); {hint}")
    return found[0]


def with_gz(names: list[str]) -> list[str]:
    """Each name, then its `.gz` twin."""
    return [n for name in names for n in (name, f"{name}.gz")]


def strip_suffixes(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def locate_reviews_and_meta(data_path: str | Path, *, category: str | None, reviews_file: str | None,
                            meta_file: str | None, review_names: list[str], meta_name: str,
                            extension: str) -> tuple[Path, Path]:
    """Find an Amazon dump's reviews and metadata files.

    `data_path` is a folder (or the reviews file itself). Explicit `reviews_file` / `meta_file` win;
    otherwise `category` picks the usual names (`review_names` / `meta_name` with `{category}` filled,
    each also tried with `.gz`), and without a category the folder must hold exactly one candidate.
    The metadata file defaults to the one named after the reviews file's category.
    """
    root = Path(data_path)
    if not root.exists():
        raise DataError(f"{root}: Amazon data path not found")
    folder = root if root.is_dir() else root.parent
    hint = "set `category` (or `reviews_file` / `meta_file`) to choose"

    if reviews_file:
        reviews = explicit_file(folder, reviews_file, "reviews file")
    elif root.is_file():
        reviews = root
    elif category:
        reviews = first_existing(folder, with_gz([n.format(category=category) for n in review_names]),
                                 f"reviews file for category {category!r}")
    else:
        candidates = sorted(p for pattern in (f"*{extension}", f"*{extension}.gz") for p in folder.glob(pattern)
                            if p.is_file() and not p.name.startswith("meta_"))
        if not candidates:
            raise DataError(f"{folder}: no reviews file found (*{extension} or *{extension}.gz, not meta_*)")
        if len(candidates) > 1:
            raise ConfigError(f"{folder}: several reviews files ({', '.join(p.name for p in candidates)}); {hint}")
        reviews = candidates[0]

    if meta_file:
        meta = explicit_file(folder, meta_file, "metadata file")
    else:
        cat = category or reviews_category(reviews.name, extension)
        meta = first_existing(folder, with_gz([meta_name.format(category=cat)]),
                              f"metadata file for category {cat!r} (set `meta_file` to name it)")
    return reviews, meta


def reviews_category(name: str, extension: str) -> str:
    """`reviews_Office_Products_5.json.gz` -> `Office_Products` (the 2014/2018/2023 naming schemes)."""
    stem = strip_suffixes(name, (f"{extension}.gz", extension))
    stem = stem.removeprefix("reviews_")
    return strip_suffixes(stem, ("_5",))
