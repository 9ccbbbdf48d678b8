"""Identity attributes of the synthetic world, domain palettes and the one-sentence description.

An identity is a handful of discrete attributes (gender, build, skin, hair, garments, shoes,
accessories, each garment with a named colour). Domains differ only in the probabilities of
those choices, so that a model that learns one domain's colour statistics transfers imperfectly.
Palettes are deliberately small and skewed (lots of black, grey, white, blue), so many identities
share single attributes and matching needs combinations and details.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Named colours (sRGB 0..255). The names appear in descriptions, the values are the base colours.
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "white": (228, 228, 222),
    "grey": (128, 128, 132),
    "dark grey": (72, 72, 76),
    "navy": (32, 42, 88),
    "blue": (48, 92, 170),
    "light blue": (135, 172, 215),
    "red": (178, 34, 38),
    "maroon": (110, 28, 40),
    "pink": (226, 140, 172),
    "purple": (108, 62, 140),
    "green": (52, 118, 62),
    "olive": (104, 104, 54),
    "beige": (196, 176, 138),
    "brown": (108, 74, 46),
    "yellow": (224, 196, 56),
    "orange": (224, 122, 44),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (22, 20, 20),
    "dark brown": (58, 40, 28),
    "brown": (104, 70, 42),
    "blond": (200, 168, 104),
    "grey": (150, 148, 144),
    "red": (146, 60, 30),
}
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (242, 204, 178),
    (226, 180, 148),
    (198, 146, 108),
    (150, 102, 70),
    (100, 66, 46),
)

GENDERS = ("man", "woman")
BUILDS = ("thin", "average", "broad")
HAIR_LENGTHS = ("short", "medium", "long")
UPPER_TYPES = ("t-shirt", "shirt", "jacket")  # short sleeves / long sleeves / long sleeves + open front
PATTERNS = ("plain", "striped", "checked", "logo")
LOWER_TYPES = ("trousers", "shorts", "skirt")
ACCESSORIES = ("backpack", "handbag", "hat")

# Thermal "temperature" (0 cold .. 1 hot) of each material, before per-identity variation.
THERMAL = {"skin": 0.92, "hair": 0.34, "upper": 0.66, "jacket": 0.52, "lower": 0.6, "shoes": 0.3, "bag": 0.28}


def _p(weights: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    """Probability vector over ``names`` from a (partial) weight dict; unknown names raise."""
    unknown = set(weights) - set(names)
    if unknown:
        raise ValueError(f"unknown names {sorted(unknown)}; expected some of {names}")
    vec = np.array([weights.get(n, 0.0) for n in names], dtype=np.float64)
    if vec.sum() <= 0:
        raise ValueError(f"weights {weights} give no probability mass")
    return vec / vec.sum()


@dataclass(frozen=True)
class Palette:
    """Attribute probabilities of one domain (weights, normalised on use)."""

    upper: dict[str, float]
    lower: dict[str, float]
    shoes: dict[str, float]
    accessory: dict[str, float]
    hair: dict[str, float]
    skin: tuple[float, ...]
    upper_type: tuple[float, float, float] = (0.45, 0.3, 0.25)
    pattern: tuple[float, float, float, float] = (0.45, 0.2, 0.15, 0.2)
    lower_type: dict[str, tuple[float, float, float]] = field(
        default_factory=lambda: {"man": (0.75, 0.25, 0.0), "woman": (0.5, 0.2, 0.3)}
    )
    p_backpack: float = 0.35
    p_handbag: float = 0.2
    p_hat: float = 0.12
    colour_jitter: float = 7.0  # per-identity std of garment colours around the named colour


# Domain palettes. Market: summer campus, light clothes; Duke: winter campus, dark coats;
# MSMT: a mix; CUHK03: indoor campus; RandPerson: wide random palette; SYSU / RegDB: mixed.
PALETTES: dict[str, Palette] = {
    "market": Palette(
        upper={"white": 6, "black": 6, "grey": 3, "blue": 1.5, "navy": 1.2, "light blue": 0.8, "red": 1.2,
               "pink": 0.6, "green": 0.6, "yellow": 0.5, "purple": 0.3, "orange": 0.3, "beige": 0.6},
        lower={"black": 7, "blue": 3, "grey": 2, "navy": 1.5, "white": 0.6, "beige": 0.8, "dark grey": 1.5},
        shoes={"white": 4, "black": 5, "grey": 1.5, "brown": 0.8},
        accessory={"black": 6, "grey": 1.5, "blue": 0.8, "red": 0.5, "white": 0.6, "brown": 0.8},
        hair={"black": 8, "dark brown": 2, "brown": 0.6, "blond": 0.2, "grey": 0.3},
        skin=(0.35, 0.4, 0.2, 0.04, 0.01),
        upper_type=(0.6, 0.25, 0.15),
        pattern=(0.4, 0.2, 0.15, 0.25),
        lower_type={"man": (0.6, 0.4, 0.0), "woman": (0.4, 0.3, 0.3)},
        colour_jitter=3.0,
    ),
    "duke": Palette(
        upper={"black": 6, "dark grey": 3, "navy": 2.5, "grey": 2, "maroon": 1.2, "brown": 1.2, "olive": 1,
               "white": 1.2, "blue": 1, "red": 0.8, "beige": 0.8, "purple": 0.5},
        lower={"black": 5, "navy": 2.5, "blue": 2.5, "dark grey": 2, "grey": 1, "beige": 1, "brown": 0.8},
        shoes={"black": 5, "brown": 3, "grey": 1.5, "white": 1.5},
        accessory={"black": 5, "dark grey": 2, "navy": 1.2, "brown": 1.2, "maroon": 0.6, "olive": 0.6},
        hair={"black": 3, "dark brown": 3, "brown": 2, "blond": 1.5, "grey": 0.6, "red": 0.4},
        skin=(0.35, 0.3, 0.15, 0.12, 0.08),
        upper_type=(0.1, 0.35, 0.55),
        lower_type={"man": (0.95, 0.05, 0.0), "woman": (0.75, 0.05, 0.2)},
        p_hat=0.22,
    ),
    "msmt": Palette(
        upper={"black": 5, "white": 3, "grey": 3, "dark grey": 2, "navy": 1.5, "blue": 1.5, "red": 1.5,
               "pink": 1, "beige": 1, "green": 0.8, "purple": 0.7, "yellow": 0.6, "brown": 0.6},
        lower={"black": 6, "blue": 2.5, "grey": 2, "navy": 1.5, "dark grey": 1.5, "white": 0.6, "beige": 0.8},
        shoes={"black": 4, "white": 4, "grey": 1.5, "brown": 1},
        accessory={"black": 5, "grey": 1.5, "white": 1, "red": 0.8, "brown": 1, "pink": 0.6, "blue": 0.8},
        hair={"black": 9, "dark brown": 2, "brown": 0.5},
        skin=(0.35, 0.45, 0.17, 0.02, 0.01),
        upper_type=(0.35, 0.3, 0.35),
    ),
    "cuhk": Palette(
        upper={"white": 3, "black": 3, "grey": 2, "blue": 2, "red": 1.5, "green": 1.2, "yellow": 1.2,
               "light blue": 1, "pink": 1, "purple": 0.8, "orange": 0.8, "navy": 1},
        lower={"blue": 4, "black": 4, "grey": 1.5, "beige": 1.5, "white": 0.8, "brown": 1},
        shoes={"white": 3, "black": 3, "grey": 1, "brown": 1.5},
        accessory={"black": 4, "blue": 1, "red": 1, "grey": 1.5, "brown": 1.2, "yellow": 0.5},
        hair={"black": 9, "dark brown": 2},
        skin=(0.3, 0.45, 0.22, 0.02, 0.01),
        upper_type=(0.5, 0.35, 0.15),
        p_backpack=0.45,
    ),
    "randperson": Palette(
        upper={n: 1.0 for n in COLOUR_NAMES},
        lower={n: 1.0 for n in COLOUR_NAMES},
        shoes={n: 1.0 for n in COLOUR_NAMES},
        accessory={n: 1.0 for n in COLOUR_NAMES},
        hair={n: 1.0 for n in HAIR_COLOURS},
        skin=(0.2, 0.2, 0.2, 0.2, 0.2),
        upper_type=(0.34, 0.33, 0.33),
        pattern=(0.25, 0.25, 0.25, 0.25),
        colour_jitter=18.0,
    ),
    "sysu": Palette(
        upper={"black": 4, "white": 3, "grey": 2.5, "blue": 2, "red": 1.5, "navy": 1.5, "pink": 1, "green": 1,
               "yellow": 0.8, "light blue": 1, "purple": 0.6},
        lower={"black": 5, "blue": 3, "grey": 2, "navy": 1.5, "beige": 1, "white": 0.6},
        shoes={"black": 4, "white": 4, "grey": 1, "brown": 1},
        accessory={"black": 5, "grey": 1.5, "blue": 1, "red": 0.8, "brown": 1},
        hair={"black": 9, "dark brown": 2},
        skin=(0.3, 0.45, 0.22, 0.02, 0.01),
    ),
}
PALETTES["regdb"] = PALETTES["sysu"]


@dataclass(frozen=True)
class Identities:
    """Attributes of ``n`` identities as parallel integer arrays (indices into the name tuples above)."""

    gender: np.ndarray
    build: np.ndarray
    height: np.ndarray  # float, relative body height
    skin: np.ndarray
    hair_colour: np.ndarray
    hair_length: np.ndarray
    upper_type: np.ndarray
    upper_colour: np.ndarray
    pattern: np.ndarray
    pattern_colour: np.ndarray  # secondary colour: stripes, checks, logo, inner shirt of a jacket
    lower_type: np.ndarray
    lower_colour: np.ndarray
    shoes_colour: np.ndarray
    backpack: np.ndarray  # bool
    backpack_colour: np.ndarray
    handbag: np.ndarray  # bool
    handbag_side: np.ndarray  # -1 left, +1 right
    handbag_colour: np.ndarray
    hat: np.ndarray  # bool
    hat_colour: np.ndarray
    colour_offset: np.ndarray  # (n, 5, 3) float: per-identity shift of upper, pattern, lower, shoes, accessory
    warmth: np.ndarray  # (n,) float: per-identity thermal offset of the garments

    def __len__(self) -> int:
        return int(self.gender.shape[0])

    def record(self, i: int) -> dict:
        """Attributes of identity ``i`` as plain names (what ``attributes.json`` stores)."""
        rec = {
            "gender": GENDERS[self.gender[i]],
            "build": BUILDS[self.build[i]],
            "height": round(float(self.height[i]), 3),
            "skin_tone": int(self.skin[i]),
            "hair": {"colour": tuple(HAIR_COLOURS)[self.hair_colour[i]], "length": HAIR_LENGTHS[self.hair_length[i]]},
            "upper": {
                "type": UPPER_TYPES[self.upper_type[i]],
                "colour": COLOUR_NAMES[self.upper_colour[i]],
                "pattern": PATTERNS[self.pattern[i]],
                "pattern_colour": COLOUR_NAMES[self.pattern_colour[i]],
            },
            "lower": {"type": LOWER_TYPES[self.lower_type[i]], "colour": COLOUR_NAMES[self.lower_colour[i]]},
            "shoes": {"colour": COLOUR_NAMES[self.shoes_colour[i]]},
            "backpack": {"colour": COLOUR_NAMES[self.backpack_colour[i]]} if self.backpack[i] else None,
            "handbag": {"colour": COLOUR_NAMES[self.handbag_colour[i]]} if self.handbag[i] else None,
            "hat": {"colour": COLOUR_NAMES[self.hat_colour[i]]} if self.hat[i] else None,
        }
        rec["description"] = describe(rec)
        return rec


def sample_identities(rng: np.random.Generator, n: int, palette: Palette) -> Identities:
    """Draw ``n`` identities from a domain palette (vectorised)."""

    def pick(weights: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
        return rng.choice(len(names), size=n, p=_p(weights, names))

    gender = rng.integers(0, 2, size=n)
    hair_names = tuple(HAIR_COLOURS)
    hair_length = np.where(
        gender == 0, rng.choice(3, size=n, p=[0.8, 0.18, 0.02]), rng.choice(3, size=n, p=[0.12, 0.3, 0.58])
    )
    lower_type = np.empty(n, dtype=np.int64)
    for g, name in enumerate(GENDERS):
        probs = np.asarray(palette.lower_type[name], dtype=np.float64)
        lower_type[gender == g] = rng.choice(3, size=int((gender == g).sum()), p=probs / probs.sum())
    upper_colour = pick(palette.upper, COLOUR_NAMES)
    pattern_colour = pick(palette.upper, COLOUR_NAMES)
    # The secondary colour must differ from the main one, otherwise the pattern is invisible.
    same = pattern_colour == upper_colour
    pattern_colour[same] = (pattern_colour[same] + rng.integers(1, len(COLOUR_NAMES), size=int(same.sum()))) % len(
        COLOUR_NAMES
    )
    handbag = rng.random(n) < palette.p_handbag
    return Identities(
        gender=gender,
        build=rng.choice(3, size=n, p=[0.3, 0.5, 0.2]),
        height=np.where(gender == 0, rng.uniform(0.93, 1.0, n), rng.uniform(0.88, 0.96, n)),
        skin=rng.choice(len(SKIN_TONES), size=n, p=np.asarray(palette.skin) / np.sum(palette.skin)),
        hair_colour=pick(palette.hair, hair_names),
        hair_length=hair_length,
        upper_type=rng.choice(3, size=n, p=np.asarray(palette.upper_type) / np.sum(palette.upper_type)),
        upper_colour=upper_colour,
        pattern=rng.choice(4, size=n, p=np.asarray(palette.pattern) / np.sum(palette.pattern)),
        pattern_colour=pattern_colour,
        lower_type=lower_type,
        lower_colour=pick(palette.lower, COLOUR_NAMES),
        shoes_colour=pick(palette.shoes, COLOUR_NAMES),
        backpack=rng.random(n) < palette.p_backpack,
        backpack_colour=pick(palette.accessory, COLOUR_NAMES),
        handbag=handbag,
        handbag_side=np.where(rng.random(n) < 0.5, -1, 1),
        handbag_colour=pick(palette.accessory, COLOUR_NAMES),
        hat=rng.random(n) < palette.p_hat,
        hat_colour=pick(palette.accessory, COLOUR_NAMES),
        colour_offset=rng.normal(0.0, palette.colour_jitter, size=(n, 5, 3)),
        warmth=rng.normal(0.0, 0.06, size=n),
    )


_PATTERN_WORDS = {"plain": "", "striped": "striped ", "checked": "checked ", "logo": ""}
_BUILD_WORDS = {"thin": "slim ", "average": "", "broad": "heavy-set "}


def describe(rec: dict) -> str:
    """One sentence from an attribute record, e.g. "a woman with long brown hair in a red striped t-shirt, ..."."""
    hair = rec["hair"]
    head = f"a {_BUILD_WORDS[rec['build']]}{rec['gender']} with {hair['length']} {hair['colour']} hair"
    if rec["hat"]:
        head += f" and a {rec['hat']['colour']} hat"
    up = rec["upper"]
    upper = f"{up['colour']} {_PATTERN_WORDS[up['pattern']]}{up['type']}"
    if up["pattern"] == "logo":
        upper += f" with a {up['pattern_colour']} logo"
    elif up["pattern"] in ("striped", "checked"):
        upper = f"{up['colour']} and {up['pattern_colour']} {up['pattern']} {up['type']}"
    if up["type"] == "jacket" and up["pattern"] == "plain":
        upper += f" over a {up['pattern_colour']} top"
    lower = f"{rec['lower']['colour']} {rec['lower']['type']}"
    text = f"{head} in a {upper}, {lower} and {rec['shoes']['colour']} shoes"
    carried = [f"a {rec[k]['colour']} {k}" for k in ("backpack", "handbag") if rec[k]]
    if carried:
        text += ", carrying " + " and ".join(carried)
    return text
