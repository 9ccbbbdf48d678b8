"""The catalogue of synthetic worlds: the real dataset each stands for, its domain and its sizes.

A world's domain is its attribute palette, camera style and detection-box jitter. ``full`` sizes
reproduce the real releases' identity, image and camera counts; ``mini`` sizes are a few dozen
identities for tests, CI and the smoke profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .scene import CameraStyle
from .world import BoxJitter


@dataclass(frozen=True)
class MarketSizes:
    """Market-style splits (Market-1501, DukeMTMC-reID, Occluded-Duke, one CUHK03-NP subset)."""

    train_ids: int
    train_images: int
    query_ids: int
    query_images: int
    gallery_images: int  # images of identified people (query ids + gallery-only ids)
    gallery_only_ids: int = 0  # identities that appear in the gallery only (Duke's distractor ids)
    distractor_images: int = 0  # Market's pid 0 images (not a person of the set)
    junk_images: int = 0  # Market's pid -1 images (bad detections, dropped by the parser)
    max_pid: int = 1501  # pids are drawn from 1..max_pid
    one_query_per_camera: bool = True


@dataclass(frozen=True)
class Cuhk03Sizes:
    detected: MarketSizes
    labeled: MarketSizes


@dataclass(frozen=True)
class MsmtSizes:
    train_ids: int
    train_images: int  # list_train
    val_images: int  # list_val (images of train ids)
    test_ids: int
    query_images: int
    gallery_images: int


@dataclass(frozen=True)
class RandPersonSizes:
    ids: int
    images: int
    cameras_per_scene: tuple[int, ...]


@dataclass(frozen=True)
class OccludedReidSizes:
    ids: int
    images_per_id: int = 5  # occluded and whole-body images each


@dataclass(frozen=True)
class SysuSizes:
    train_ids: int
    val_ids: int
    test_ids: int
    train_rgb: int
    train_ir: int
    test_rgb: int
    test_ir: int
    max_pid: int = 533


@dataclass(frozen=True)
class RegdbSizes:
    ids: int
    images_per_modality: int = 10
    trials: int = 10


@dataclass(frozen=True)
class Domain:
    """Appearance statistics of a world: attribute palette, camera style and detection boxes."""

    palette: str
    cameras: CameraStyle
    box: BoxJitter = field(default_factory=BoxJitter)


@dataclass(frozen=True)
class WorldSpec:
    """What a synthetic world is: a stand-in for one real dataset, written in that dataset's layout.

    The spec is the recipe; :func:`reidlab.data.synthetic.plan_world` turns it into a planned world at a
    size and seed, and :func:`reidlab.data.synthetic.generate` renders and writes it.
    """

    name: str
    stands_for: str  # registered name of the real dataset whose parser reads the world
    layout: str  # market | duke | cuhk03 | msmt | randperson | occluded_reid | sysu | regdb
    domain: Domain
    num_cams: int
    sizes: dict[str, object]
    occlusion: dict[str, float] = field(default_factory=dict)  # split -> share of occluded images
    infrared_cams: tuple[int, ...] = ()  # 0-based
    indoor_cams: tuple[int, ...] = ()  # 0-based, drawn with indoor scenes
    image_size: tuple[int, int] = (128, 64)
    description: str = ""

    def size(self, size: str) -> object:
        if size not in self.sizes:
            raise ValueError(f"{self.name}: unknown size {size!r}; expected one of {sorted(self.sizes)}")
        return self.sizes[size]


MARKET = Domain(
    palette="market",
    cameras=CameraStyle(scenes=("campus", "street"), brightness=(0.82, 1.15), temperature=(-0.65, 0.65),
                        saturation=(0.72, 1.1), contrast=(0.85, 1.12), blur=(0.35, 1.0), side_view=(0.1, 0.9)),
    box=BoxJitter(scale_std=0.05, shift_std=0.05, partial=0.06),
)
DUKE = Domain(
    palette="duke",
    cameras=CameraStyle(scenes=("winter", "street", "campus"), brightness=(0.6, 1.05), temperature=(-0.6, 1.0),
                        saturation=(0.5, 1.0), contrast=(0.85, 1.3), blur=(0.25, 0.8), noise=(0.01, 0.03),
                        jpeg_quality=(80, 95), side_view=(0.3, 0.95)),
    box=BoxJitter(scale_std=0.07, shift_std=0.06, partial=0.05),
)
MSMT = Domain(
    palette="msmt",
    cameras=CameraStyle(scenes=("campus", "street", "indoor"), brightness=(0.55, 1.3), temperature=(-1, 1),
                        saturation=(0.5, 1.2), contrast=(0.7, 1.3), blur=(0.3, 1.1), noise=(0.01, 0.035),
                        jpeg_quality=(70, 92), side_view=(0.05, 0.95)),
    box=BoxJitter(scale_std=0.06, shift_std=0.05, partial=0.05),
)
CUHK = Domain(
    palette="cuhk",
    cameras=CameraStyle(scenes=("indoor",), brightness=(0.6, 1.2), temperature=(-0.3, 1.0), saturation=(0.55, 1.0),
                        contrast=(0.8, 1.2), blur=(0.5, 1.2), noise=(0.01, 0.03), side_view=(0.05, 0.6)),
    box=BoxJitter(scale_std=0.06, shift_std=0.06, partial=0.04),
)
RANDPERSON = Domain(
    palette="randperson",
    cameras=CameraStyle(scenes=("random", "campus", "street", "indoor"), brightness=(0.7, 1.25),
                        temperature=(-0.5, 0.5), saturation=(0.8, 1.2), contrast=(0.85, 1.2), blur=(0.2, 0.7),
                        noise=(0.005, 0.015), jpeg_quality=(88, 96), side_view=(0.1, 0.9)),
    box=BoxJitter(scale_std=0.04, shift_std=0.04, partial=0.02),
)
SYSU = Domain(
    palette="sysu",
    cameras=CameraStyle(scenes=("indoor", "campus", "street"), brightness=(0.7, 1.2), temperature=(-0.7, 0.7),
                        saturation=(0.6, 1.1), contrast=(0.8, 1.2), blur=(0.4, 1.0), side_view=(0.2, 0.8)),
)
REGDB = Domain(
    palette="regdb",
    cameras=CameraStyle(scenes=("street", "night"), brightness=(0.8, 1.1), temperature=(-0.2, 0.4),
                        saturation=(0.6, 0.9), contrast=(0.9, 1.1), blur=(0.5, 1.0), side_view=(0.0, 0.0)),
    box=BoxJitter(scale_std=0.03, shift_std=0.03, partial=0.0),
)

WORLDS: dict[str, WorldSpec] = {}


def _add(spec: WorldSpec) -> None:
    WORLDS[spec.name] = spec


_add(WorldSpec(
    name="synth_market", stands_for="market1501", layout="market", domain=MARKET, num_cams=6,
    sizes={
        "mini": MarketSizes(train_ids=60, train_images=480, query_ids=40, query_images=110, gallery_images=330,
                            distractor_images=40, junk_images=20),
        "full": MarketSizes(train_ids=751, train_images=12936, query_ids=750, query_images=3368,
                            gallery_images=13120, distractor_images=2793, junk_images=3819),
    },
    description="Market-1501: 6 cameras, summer campus, pid 0 distractors and pid -1 junk in the gallery",
))
_add(WorldSpec(
    name="synth_duke", stands_for="dukemtmc", layout="duke", domain=DUKE, num_cams=8,
    sizes={
        "mini": MarketSizes(train_ids=50, train_images=400, query_ids=40, query_images=100, gallery_images=380,
                            gallery_only_ids=20, max_pid=7140),
        "full": MarketSizes(train_ids=702, train_images=16522, query_ids=702, query_images=2228,
                            gallery_images=17661, gallery_only_ids=408, max_pid=7140),
    },
    occlusion={"train": 0.06, "query": 0.06, "gallery": 0.06},
    description="DukeMTMC-reID: 8 cameras, winter campus, dark clothes, 408 gallery-only identities",
))
_add(WorldSpec(
    name="synth_msmt", stands_for="msmt17", layout="msmt", domain=MSMT, num_cams=15, indoor_cams=(12, 13, 14),
    sizes={
        "mini": MsmtSizes(train_ids=60, train_images=440, val_images=40, test_ids=40, query_images=120,
                          gallery_images=360),
        "full": MsmtSizes(train_ids=1041, train_images=30248, val_images=2373, test_ids=3060, query_images=11659,
                          gallery_images=82161),
    },
    description="MSMT17: 15 cameras (12 outdoor, 3 indoor), lighting changing with the time of day, list files",
))
_add(WorldSpec(
    name="synth_cuhk03_np", stands_for="cuhk03_np", layout="cuhk03", domain=CUHK, num_cams=2,
    sizes={
        "mini": Cuhk03Sizes(
            detected=MarketSizes(train_ids=50, train_images=480, query_ids=40, query_images=80, gallery_images=300,
                                 max_pid=1467, one_query_per_camera=True),
            labeled=MarketSizes(train_ids=50, train_images=482, query_ids=40, query_images=80, gallery_images=298,
                                max_pid=1467, one_query_per_camera=True)),
        "full": Cuhk03Sizes(
            detected=MarketSizes(train_ids=767, train_images=7365, query_ids=700, query_images=1400,
                                 gallery_images=5332, max_pid=1467),
            labeled=MarketSizes(train_ids=767, train_images=7368, query_ids=700, query_images=1400,
                                gallery_images=5328, max_pid=1467)),
    },
    description="CUHK03-NP (767/700 split): 2 cameras, indoor, detected and labeled boxes, PNG files",
))
_add(WorldSpec(
    name="synth_randperson", stands_for="randperson", layout="randperson", domain=RANDPERSON, num_cams=19,
    sizes={
        "mini": RandPersonSizes(ids=80, images=640, cameras_per_scene=(2, 2, 1, 2, 1, 2, 2, 1, 2, 2, 2)),
        "full": RandPersonSizes(ids=8000, images=132145, cameras_per_scene=(2, 2, 1, 2, 1, 2, 2, 1, 2, 2, 2)),
    },
    description="RandPerson subset: random palettes and textures, 11 scenes / 19 cameras, training only",
))
_add(WorldSpec(
    name="synth_pretrain", stands_for="randperson", layout="randperson", domain=RANDPERSON, num_cams=19,
    sizes={
        "mini": RandPersonSizes(ids=3000, images=12000, cameras_per_scene=(2, 2, 1, 2, 1, 2, 2, 1, 2, 2, 2)),
        "full": RandPersonSizes(ids=8000, images=160000, cameras_per_scene=(2, 2, 1, 2, 1, 2, 2, 1, 2, 2, 2)),
    },
    description="the lab's pretraining world (reidlab.pretrain): RandPerson-style random palettes, 19 cameras, "
    "training only; its identities are drawn from a stream keyed on its own name, disjoint from every "
    "evaluation world",
))
_add(WorldSpec(
    name="synth_occluded_duke", stands_for="occluded_duke", layout="duke", domain=DUKE, num_cams=8,
    sizes={
        "mini": MarketSizes(train_ids=50, train_images=400, query_ids=30, query_images=90, gallery_images=380,
                            gallery_only_ids=30, max_pid=7140),
        "full": MarketSizes(train_ids=702, train_images=15618, query_ids=519, query_images=2210,
                            gallery_images=17661, gallery_only_ids=591, max_pid=7140),
    },
    occlusion={"train": 0.1, "query": 1.0, "gallery": 0.1},
    description="Occluded-Duke: Duke's world, every query occluded, about 10% of train and gallery",
))
_add(WorldSpec(
    name="synth_occluded_reid", stands_for="occluded_reid", layout="occluded_reid", domain=MARKET, num_cams=5,
    sizes={"mini": OccludedReidSizes(ids=30), "full": OccludedReidSizes(ids=200)},
    occlusion={"query": 1.0, "gallery": 0.0},
    description="Occluded-REID: 5 occluded + 5 whole-body images per person, test only (train on Market)",
))
_add(WorldSpec(
    name="synth_sysu", stands_for="sysu_mm01", layout="sysu", domain=SYSU, num_cams=6, infrared_cams=(2, 5),
    indoor_cams=(0, 1, 2),
    sizes={
        "mini": SysuSizes(train_ids=30, val_ids=10, test_ids=20, train_rgb=320, train_ir=160, test_rgb=160,
                          test_ir=80, max_pid=60),
        "full": SysuSizes(train_ids=296, val_ids=99, test_ids=96, train_rgb=22258, train_ir=11909, test_rgb=7813,
                          test_ir=3803),
    },
    description="SYSU-MM01: RGB cameras 1,2 (indoor) 4,5 (outdoor), thermal cameras 3 (indoor) and 6 (outdoor)",
))
_add(WorldSpec(
    name="synth_regdb", stands_for="regdb", layout="regdb", domain=REGDB, num_cams=2, infrared_cams=(1,),
    sizes={"mini": RegdbSizes(ids=40), "full": RegdbSizes(ids=412)},
    description="RegDB: co-registered visible + thermal pairs, 10 of each per person, 10 trials",
))

SIZES = ("mini", "full")


def get_world(name: str) -> WorldSpec:
    """The synthetic world called ``name`` (a clear error lists the known ones)."""
    if name not in WORLDS:
        raise ValueError(f"unknown synthetic world {name!r}; expected one of {sorted(WORLDS)}")
    return WORLDS[name]
