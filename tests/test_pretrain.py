"""The lab's own pretrained weights: a disjoint world, exact objectives, reproducible exports, clear errors."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reidlab.data import load_dataset
from reidlab.data.synthetic import plan_world
from reidlab.data.synthetic.attributes import PALETTES, describe, sample_identities
from reidlab.data.synthetic.catalog import WORLDS
from reidlab.models.lab_clip import CompactTokenizer, create_lab_clip, default_vocabulary
from reidlab.pretrain import PRETRAIN_WORLD, SPECS, get_pretrain_preset, pretrain, read_card
from reidlab.pretrain.objectives import distinct_captions, multi_positive_clip_loss
from reidlab.pretrain.run import load_lab_backbone
from reidlab.weights import WeightFileError, lab_weight_file


def _appearances(world: str, size: str) -> set[tuple]:
    ids = plan_world(world, size).ids
    arrays = [ids.gender, ids.build, ids.skin, ids.hair_colour, ids.hair_length, ids.upper_type, ids.upper_colour,
              ids.pattern, ids.pattern_colour, ids.lower_type, ids.lower_colour, ids.shoes_colour, ids.backpack,
              ids.handbag, ids.hat]  # fmt: skip
    offsets = np.round(ids.colour_offset.reshape(len(ids), -1), 6)
    return {(*(int(a[i]) for a in arrays), *offsets[i].tolist()) for i in range(len(ids))}


@pytest.mark.parametrize("size", ["mini", "full"])
def test_the_pretraining_world_shares_no_identity_with_any_evaluation_world(size):
    pretraining = _appearances(PRETRAIN_WORLD, size)
    assert len(pretraining) == len(plan_world(PRETRAIN_WORLD, size).ids)
    for world in WORLDS:
        if world == PRETRAIN_WORLD:
            continue
        for other_size in ("mini", "full"):
            assert not pretraining & _appearances(world, other_size), (world, other_size)


def test_the_compact_tokenizer_covers_every_description_and_ends_on_the_largest_id():
    tokenizer = CompactTokenizer(default_vocabulary())
    rng = np.random.default_rng(0)
    texts = []
    for palette in PALETTES.values():
        ids = sample_identities(rng, 300, palette)
        texts += [ids.record(i)["description"] for i in range(len(ids))]
    assert tokenizer.unknown_share(texts) == 0.0
    assert tokenizer.unknown_share(["a photo of a X X X X person."]) == 0.0
    tokens = tokenizer(texts[:5])
    assert tokens.shape == (5, 64) and torch.equal(tokens.argmax(dim=1), (tokens > 0).sum(dim=1) - 1)
    assert int(tokens.max()) == tokenizer.vocab_size - 1 == tokenizer.eot
    assert describe(ids.record(0)) == texts[-300]


def test_multi_positive_clip_loss_is_clips_loss_when_captions_are_distinct():
    from open_clip.loss import ClipLoss

    g = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    text = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    scale = torch.tensor(10.0)
    ours, _ = multi_positive_clip_loss(image, text, torch.arange(6), scale)
    assert torch.allclose(ours, ClipLoss()(image, text, scale), atol=1e-6)
    captions = ["a", "b", "a", "c", "b", "a"]
    texts, index = distinct_captions(captions)
    assert texts == ["a", "b", "c"] and index.tolist() == [0, 1, 0, 2, 1, 0]
    loss, parts = multi_positive_clip_loss(image, text[:3], index, scale)
    logits = scale * image @ text[:3].T
    t2i = torch.stack([-(F.log_softmax(logits.T[j], 0)[index == j]).mean() for j in range(3)]).mean()
    assert torch.allclose(parts["t2i"], t2i, atol=1e-6)
    assert torch.allclose(parts["i2t"], F.cross_entropy(logits, index), atol=1e-6)


@pytest.fixture
def lab_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    return tmp_path


TINY = dict(epochs=2, max_iters_per_epoch=2, batch_p=4, batch_k=2, progress=False, fast_data=False,
            checkpoint_every=1)  # fmt: skip


@pytest.mark.parametrize("model", ["resnet18", "vit_tiny_d6_patch16", "clip_tiny_synth"])
def test_the_same_command_gives_the_same_weights_and_they_load(lab_folders, model):
    world = load_dataset("synth_market", size="mini")
    first = pretrain(model, dataset=world, run_dir=lab_folders / "a", **TINY)
    digest = first.card["fingerprint"]
    second = pretrain(model, dataset=world, run_dir=lab_folders / "b", **TINY)  # same file: no overwrite needed
    assert second.card["fingerprint"] == digest  # the file's bytes may differ: metadata key order
    card = json.loads(lab_weight_file(model).with_suffix(".json").read_text())
    assert card["world"]["name"] == "synth_market" and card["epochs"] == 2 and card["dtype"] == "float16"
    assert card["command"].startswith(f"python -m reidlab.pretrain --model {model} --profile smoke -p batch_")
    assert card["command"].endswith("-p batch_p=4 -p epochs=2 -p fast_data=False -p max_iters_per_epoch=2")
    size = list(get_pretrain_preset(model).image_size)
    assert {"loss"} <= set(card["final_losses"]) and card["preprocessing"]["image_size"] == size
    loaded = load_lab_backbone(model, "lab")
    trained = first.backbone.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.allclose(value.float(), trained[key].half().float()), key
    with pytest.raises(FileExistsError, match="already holds other lab weights"):
        pretrain(model, dataset=world, run_dir=lab_folders / "c", **{**TINY, "lr": 1e-2})


def test_lab_resnet18_weights_initialise_every_resnet_method(lab_folders):
    """BoT, MuDeep v2 and IV-ReID take the lab ResNet-18 through ``pretrained="lab"`` (and ``"auto"``)."""
    from reidlab.models.bot import bot_resnet18
    from reidlab.models.ivreid import ivreid_resnet18
    from reidlab.models.mudeep_v2 import mudeep_v2_resnet18
    from reidlab.weights import load_state_dict

    world = load_dataset("synth_market", size="mini")
    result = pretrain("resnet18", dataset=world, run_dir=lab_folders / "r18", **TINY)
    lab = load_state_dict(result.weights)
    for build in (bot_resnet18, ivreid_resnet18, mudeep_v2_resnet18):
        model = build(num_classes=5, pretrained="auto")
        trunk = getattr(model, "backbone", None) or model.trunk
        assert trunk.pretrained_weights["source"] == "lab", build.__name__
        assert torch.equal(trunk.conv1.weight, lab["conv1.weight"].float()), build.__name__
        assert torch.equal(trunk.layer3[0].bn1.running_var, lab["layer3.0.bn1.running_var"].float())


def test_bad_names_and_files_are_clear_errors(lab_folders):
    with pytest.raises(ValueError, match=r"unknown pretraining model 'vit_huge'.*clip_tiny_synth"):
        get_pretrain_preset("vit_huge")
    with pytest.raises(FileNotFoundError, match="python -m reidlab.pretrain --model vit_tiny_d6_patch16"):
        load_lab_backbone("vit_tiny_d6_patch16", "lab")
    path = lab_weight_file("vit_tiny_d6_patch16")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightFileError, match="vit_tiny_d6_patch16.safetensors"):
        load_lab_backbone("vit_tiny_d6_patch16", "lab")
    from safetensors.torch import save_file

    clip, _ = create_lab_clip(False)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))  # a CLIP under the ViT's name
    with pytest.raises(ValueError, match="vit_tiny_d6_patch16.safetensors: no tensor matches VisionTransformer"):
        load_lab_backbone("vit_tiny_d6_patch16", "lab")
    clip_path = lab_weight_file("clip_tiny_synth")
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(clip_path),
              metadata={"vocabulary": json.dumps([1, 2, 3])})  # fmt: skip
    with pytest.raises(ValueError, match="built on another vocabulary"):
        create_lab_clip("lab")


@pytest.mark.parametrize("name", [n for n, spec in SPECS.items() if spec.shipped])
def test_shipped_weights_match_their_card_and_the_command_that_makes_them(name):
    """The committed file is the one its card describes, loads strictly, and came from today's smoke preset."""
    from reidlab.engine.config import changed_settings
    from reidlab.engine.stages import plain
    from reidlab.pretrain.cards import fingerprint, sha256

    card = read_card(name)
    path = lab_weight_file(name)
    assert path.stat().st_size < 8 * 2**20 and card["file"] == path.name and card["dtype"] == "float16"
    assert sha256(path) == card["sha256"] and fingerprint(path) == card["fingerprint"]
    assert card["world"] == {"name": PRETRAIN_WORLD, "size": "mini", "seed": 0, "identities": 3000, "images": 12000}
    assert card["command"] == f"python -m reidlab.pretrain --model {name} --profile smoke"
    assert changed_settings(card["preset"], plain(get_pretrain_preset(name).as_dict())) == {}
    assert card["epochs"] == get_pretrain_preset(name).epochs == len(card["history"])
    assert {"zero_shot_reid"} <= set(card["checks"])
    load_lab_backbone(name, "lab")  # strict: every tensor of the architecture, nothing else
