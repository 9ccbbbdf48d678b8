"""DMF: attribute sentences, the shared-encoder stage I (image and text of the same identities through one ViT), an
image-only stage II, BEiT / data2vec checkpoints reproduced exactly by the BEiT-style ReID ViT, and tiny runs."""

import argparse
import json
import warnings

import pytest
import torch
from timm.models.beit import Beit

from reidlab.data.attribute_sentences import (
    compose,
    file_source,
    market_phrases,
    sentence_source,
    synthetic_phrases,
    view_word,
)
from reidlab.models.beit_weights import build_beit_backbone, load_beit_weights
from reidlab.models.dmf import DMF
from reidlab.models.reid_beit import ReIDBeitViT
from reidlab.models.text_tokens import TextTokenEncoder
from reidlab.models.vit import ViTSize
from reidlab.weights import WeightMismatchError

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}
RECORD = {"gender": "woman", "hair": {"length": "long", "colour": "black"},
          "upper": {"type": "jacket", "colour": "red", "pattern": "plain", "pattern_colour": "white"},
          "lower": {"type": "skirt", "colour": "navy"}, "shoes": {"colour": "white"}, "backpack": {"colour": "grey"},
          "handbag": None, "hat": None}  # fmt: skip


def tiny_dmf(**kwargs) -> DMF:
    torch.manual_seed(0)
    options = dict(backbone=TINY, num_classes=3, pretrain_classes=4, pretrained=False, image_size=(64, 32),
                   drop_path_rate=0.0, text_encoder="clip_tiny_synth")  # fmt: skip
    return DMF(**{**options, **kwargs})


def test_attribute_sentences_are_phrase_lists_whose_groups_can_be_dropped(tmp_path):
    phrases = synthetic_phrases(RECORD, view_deg=170)
    assert compose(phrases) == ("a female pedestrian, long black hair, red jacket over a white top, navy skirt, "
                                "white shoes, grey backpack, back view")  # fmt: skip
    assert compose(phrases, drop=("gender", "view")) == ("a pedestrian, long black hair, red jacket over a white top, "
                                                         "navy skirt, white shoes, grey backpack")  # fmt: skip
    assert [view_word(v) for v in (0, 40, -60, 90, 135, -179, 360)] == ["front", "front", "side", "side", "back",
                                                                        "back", "front"]  # fmt: skip
    with pytest.raises(ValueError, match="unknown attribute group"):
        compose(phrases, drop=("colour",))
    market = market_phrases({"gender": "male", "hair": "short hair", "up": "short sleeves", "clothes": "pants",
                             "down": "long lower-body clothing", "carrying": ["backpack"], "up_colors": ["gray"],
                             "down_colors": ["black", "blue"]})  # fmt: skip
    assert compose(market) == ("a male pedestrian, short hair, grey top with short sleeves, black and blue long pants, "
                               "backpack")  # fmt: skip
    from reid_fakes import fake_dataset

    data = fake_dataset(tmp_path / "data", num_ids=2, per_id=2)
    assert sentence_source(data) is None  # no attributes: stage II only
    path = tmp_path / "texts.json"
    path.write_text(json.dumps({"0": {"gender": "male", "upper": "red shirt"}, "1": "a woman in blue"}))
    source = file_source(data, path)
    assert source.sentence(data.train[0]) == "a male pedestrian, red shirt"
    assert source.sentence(data.train[-1]) == "a pedestrian, a woman in blue"
    assert source.covers(data.train) and source.groups == ("gender", "upper", "text")
    path.write_text(json.dumps({"0": {"colour": "red"}}))
    with pytest.raises(ValueError, match="must map to a sentence or to phrases"):
        file_source(data, path)


def test_text_tokens_end_at_the_end_token_and_a_missing_openai_file_is_named(tmp_path, monkeypatch):
    from reidlab.models.text_tokens import build_text_tokens

    encoder = build_text_tokens("clip_tiny_synth", pretrained=False)
    texts = ["a male pedestrian", "a female pedestrian, long black hair, red jacket"]
    tokens, valid = encoder(texts)
    lengths = [len(encoder.token_strings(t)) for t in texts]
    assert valid.sum(1).tolist() == lengths and tokens.shape == (2, max(lengths), encoder.width)
    assert encoder.token_strings(texts[0]) == ["<start>", "a", "male", "pedestrian", "<end>"]
    with torch.no_grad():  # causal tower, padding cut after the longest text: a text's tokens do not depend on others
        alone, _ = encoder(texts[:1])
    assert torch.allclose(alone[0], tokens[0, : lengths[0]], atol=1e-5)
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ViT-B-16.pt"):
        build_text_tokens("ViT-B-16", pretrained=True)


def _record_block_inputs(model: DMF) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    for block in model.vit.blocks[:1]:
        block.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape)))
    return shapes


def test_a_stage1_batch_carries_image_and_text_of_the_same_identities_through_one_encoder():
    model = tiny_dmf().train()
    shapes = _record_block_inputs(model)
    images, labels = torch.randn(4, 3, 64, 32), torch.tensor([0, 0, 1, 1])
    texts = ["a male pedestrian, red shirt, front view", "a male pedestrian, red shirt, back view",
             "a female pedestrian, blue skirt", "a female pedestrian, blue skirt"]  # fmt: skip
    out = model(images, stage1=True, texts=texts, labels=labels)
    # the image batch and the three distinct (text, identity) pairs went through the *same* first block
    grid_tokens = 1 + 4 * 2
    text_length = max(len(model.text_encoder.token_strings(t)) for t in texts) + 1  # + the text CLS
    assert sorted(shapes) == [(3, text_length, 32), (4, grid_tokens, 32)]
    assert out["features"].shape == (7, 32) and out["logits"].shape == (7, 4)
    assert out["labels"].tolist() == [0, 0, 1, 1, 0, 0, 1] and out["modality"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    from reidlab.losses.dmf import DMFStage1Loss

    total, parts = DMFStage1Loss()(out, {"pid": labels})
    total.backward()
    assert {"accuracy_image", "accuracy_text", "image_text_cos", "id", "triplet"} <= set(parts)
    assert model.text_proj.weight.grad.abs().sum() > 0 and model.text_type.grad.abs().sum() > 0
    assert model.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.pretrain_neck.classifier.weight.grad.abs().sum() > 0 and model.neck.classifier.weight.grad is None
    assert all(p.grad is None for p in model.text_encoder.parameters())  # frozen text tower
    # the text CLS starts as the image CLS (the same token and position vector)
    seq, valid = model.text_sequence(texts[:1])
    assert torch.allclose(seq[0, 0], (model.vit.cls_token + model.vit.pos_embed[:, :1])[0, 0])
    assert valid.all()


def test_the_concatenated_variant_encodes_one_sequence_and_pads_texts():
    model = tiny_dmf(fusion="concat").eval()
    shapes = _record_block_inputs(model)
    texts = ["a male pedestrian", "a female pedestrian, long black hair, red jacket, navy skirt"]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 32), stage1=True, texts=texts, labels=torch.tensor([0, 1]))
    length = max(len(model.text_encoder.token_strings(t)) for t in texts)
    assert shapes == [(2, 9 + length, 32)] and out["features"].shape == (2, 32)
    x, valid, n = model.fused_sequence(torch.randn(2, 3, 64, 32), texts)
    assert n == 9 and valid[0].sum() == 9 + len(model.text_encoder.token_strings(texts[0])) and valid[1].all()
    # padding is masked: appending a longer text to the batch leaves the first sample's CLS unchanged
    with torch.no_grad():
        image = torch.randn(1, 3, 64, 32)
        alone = model.encode_fused(image, texts[:1])
        padded = model.encode_fused(image.expand(2, -1, -1, -1), [texts[0], texts[1]])[:1]
    assert torch.allclose(alone, padded, atol=1e-5)
    from reidlab.methods.dmf_analysis import text_attention

    attention = text_attention(model, torch.randn(2, 3, 64, 32), texts)
    assert attention["weights"].shape == (2, length) and len(attention["tokens"][0]) < length
    assert ((0 < attention["text_share"]) & (attention["text_share"] < 1)).all()
    assert attention["tokens"][0][0] == "<start>" and attention["tokens"][0][-1] == "<end>"


def test_test_feature_and_stage2_outputs():
    model = tiny_dmf().eval()
    images = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        feature = model(images)
        assert feature.shape == (3, 32) and torch.allclose(feature, model.encode_images(images))
        assert tiny_dmf(neck_feat="after").eval()(images).shape == (3, 32)
    train = model.train()(images)
    assert set(train) == {"logits", "features"} and train["logits"].shape == (3, 3)
    with pytest.raises(RuntimeError, match="pretrain_classes=0"):
        tiny_dmf(pretrain_classes=0)(images, stage1=True, texts=["a"] * 3, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="fusion must be one of"):
        tiny_dmf(fusion="cross")


# ----------------------------------------------------------------------------- BEiT / data2vec checkpoints


def _official_layout(beit: Beit) -> dict:
    """The unilm BEiT / data2vec_vision file: timm's names plus what the original keeps (index buffers, the mask
    token, the pre-training head), wrapped in ``{"model": ...}`` next to the pickled training arguments."""
    state = dict(beit.state_dict())
    for name, module in beit.named_modules():
        if getattr(module, "relative_position_index", None) is not None:
            state[f"{name}.relative_position_index"] = module.relative_position_index.clone()
    dim = beit.embed_dim
    state.update({"mask_token": torch.zeros(1, 1, dim), "lm_head.weight": torch.randn(dim, dim),
                  "lm_head.bias": torch.zeros(dim)})  # fmt: skip
    return {"model": state, "epoch": 799, "args": argparse.Namespace(model="beit_base_patch16_224", layer_scale=0.1)}


@pytest.mark.parametrize("shared,absolute", [(False, False), (True, False), (False, True), (True, True)])
def test_beit_and_data2vec_files_reproduce_timm_beit_exactly(tmp_path, shared, absolute):
    torch.manual_seed(0)
    beit = Beit(img_size=(64, 32), patch_size=16, embed_dim=32, depth=2, num_heads=2, num_classes=0,
                global_pool="token", use_abs_pos_emb=absolute, use_rel_pos_bias=not shared,
                use_shared_rel_pos_bias=shared, init_values=0.1).eval()  # fmt: skip
    with torch.no_grad():  # every tensor random: zero q/v biases or relative tables would hide a wrong mapping
        for param in beit.parameters():
            param.normal_(0.0, 0.3)
    path = tmp_path / "checkpoint-799.pth"
    torch.save(_official_layout(beit), path)
    vit = ReIDBeitViT(size=ViTSize(32, 2, 2), image_size=(64, 32), drop_path_rate=0.0).eval()
    record = load_beit_weights(vit, path)
    assert record["tensors_loaded"] == record["tensors_total"]
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        expected = beit.forward_features(images)
        assert torch.allclose(vit.forward_features(images), expected, atol=1e-5)
        assert torch.allclose(vit(images), expected[:, 0], atol=1e-5)
        block = vit.blocks[0].attn.qkv.bias
        assert torch.equal(block[32:64], torch.zeros(32))  # BEiT's missing k bias
        vit.relative_position[0].relative_position_bias_table.zero_()  # the bias matters: without it, outputs move
        assert not torch.allclose(vit.forward_features(images), expected, atol=1e-3)


def test_beit_files_resize_to_the_reid_grid_and_refuse_another_size(tmp_path, monkeypatch):
    torch.manual_seed(0)
    beit = Beit(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, num_classes=0,
                use_abs_pos_emb=True, use_shared_rel_pos_bias=True, init_values=0.1)  # fmt: skip
    state = _official_layout(beit)  # global average pooling: fc_norm instead of norm (a fine-tuned file's layout)
    assert "fc_norm.weight" in state["model"] and "norm.weight" not in state["model"]
    path = tmp_path / "beit_file.pth"
    torch.save(state, path)
    vit = ReIDBeitViT(size=ViTSize(32, 2, 2), image_size=(96, 48), stride=12, drop_path_rate=0.0)
    load_beit_weights(vit, path)
    assert vit.grid_size == (7, 3) and vit.relative_position[1].relative_position_bias_table.shape == (13 * 5 + 3, 2)
    assert vit(torch.randn(1, 3, 96, 48)).shape == (1, 32)
    other = ReIDBeitViT(size=ViTSize(64, 2, 2), image_size=(64, 32))
    with pytest.raises((WeightMismatchError, ValueError)):
        load_beit_weights(other, path)
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="data2vec_vision_base_pt.pth"):
        build_beit_backbone("data2vec_vision_base", pretrained=True, image_size=(64, 32))


def test_a_dmf_on_a_beit_style_vit_runs_text_without_the_image_position_bias():
    model = tiny_dmf()
    model.vit = ReIDBeitViT(size=ViTSize(32, 2, 2), image_size=(64, 32), drop_path_rate=0.0)
    with torch.no_grad():
        for table in model.vit.relative_position:
            table.relative_position_bias_table.normal_()
    texts = ["a male pedestrian", "a female pedestrian, long black hair"]
    out = model(torch.randn(2, 3, 64, 32), stage1=True, texts=texts, labels=torch.tensor([0, 1]))
    assert out["features"].shape == (4, 32) and torch.isfinite(out["features"]).all()
    model.fusion = "concat"
    fused = model(torch.randn(2, 3, 64, 32), stage1=True, texts=texts, labels=torch.tensor([0, 1]))
    assert fused["features"].shape == (2, 32) and torch.isfinite(fused["features"]).all()


# ----------------------------------------------------------------------------- runs


@pytest.fixture
def fake(tmp_path, monkeypatch):
    from reid_fakes import fake_dataset

    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    data = fake_dataset(tmp_path / "data", num_ids=6, per_id=4)
    colours = ["red", "blue", "green", "black", "white", "grey"]
    texts = {str(p): {"gender": "male" if p % 2 else "female", "upper": f"{colours[p]} shirt",
                      "lower": f"{colours[-p - 1]} trousers"} for p in range(6)}  # fmt: skip
    path = tmp_path / "texts.json"
    path.write_text(json.dumps(texts))
    return data, str(path)


SMALL = dict(image_size=(64, 32), batch_p=3, batch_k=2, epochs=1, stage1_epochs=1, max_iters_per_epoch=2,
             pretrained=False, progress=False, fast_data=False, dataset="fake", checkpoint_every=0,
             eval_batch_size=16, model="dmf_vit_tiny_d6_patch16", text_encoder="clip_tiny_synth")  # fmt: skip


def test_stage2_never_sees_text_and_stage1_does(fake, monkeypatch):
    from reidlab.methods import run

    data, texts = fake
    calls = []
    original = TextTokenEncoder.forward

    def counting(self, batch_texts):
        calls.append(len(batch_texts))
        return original(self, batch_texts)

    monkeypatch.setattr(TextTokenEncoder, "forward", counting)
    first = run("dmf", data=data, text_file=texts, stop_after=("stage1", 1), **SMALL)
    assert not first.train.completed and len(calls) == 2  # one text encoding per stage-I batch
    calls.clear()
    seen_keys = []
    from reidlab.engine import trainer as trainer_module

    default_forward = trainer_module.default_forward

    def spying(model, batch):
        seen_keys.append(set(batch))
        return default_forward(model, batch)

    monkeypatch.setattr(trainer_module, "default_forward", spying)
    done = run("dmf", data=data, text_file=texts, resume=True, **SMALL)
    assert done.train.completed and calls == []  # stage II and the test split: the text tower never ran
    assert seen_keys and all("caption" not in keys for keys in seen_keys)


def test_a_tiny_dmf_run_end_to_end_and_its_analyses(fake):
    from reidlab.data.attribute_sentences import file_source
    from reidlab.methods import run
    from reidlab.methods.dmf_analysis import alignment, group_ablation, modality_embeddings, stage1_model

    data, texts = fake
    result = run("dmf", data=data, text_file=texts, **SMALL)
    assert result.record["stages"] == ["stage1", "stage2"] and result.metrics["protocol"] == "market"
    assert {"accuracy_text", "accuracy_image", "image_text_cos"} <= set(result.history.columns)
    assert list(result.history["stage"]) == ["stage1", "stage2"]
    first = stage1_model(result.run_dir)
    source = file_source(data, texts)
    embeddings = modality_embeddings(first, data, source, num_ids=3)
    assert embeddings["image"].shape == (12, 192) and embeddings["text"].shape == (3, 192)
    assert set(alignment(embeddings)) == {"text-image cosine, same identity", "text-image cosine, other identities",
                                          "texts nearest their own identity's images"}  # fmt: skip
    table = group_ablation(first, data, source)
    assert list(table["sentences"]) == ["all groups", "without gender", "without upper", "without lower"]
    assert table.loc[0, "Δ mAP"] == 0 and table["mAP"].between(0, 100).all()
    with warnings.catch_warnings(record=True) as caught:  # no attributes: stage II alone, and said so
        warnings.simplefilter("always")
        plain = run("dmf", data=data, name="plain", evaluate=False, **SMALL)
    assert plain.record["stages"] == ["stage2"] and any("stage I is skipped" in str(w.message) for w in caught)
    control = run("dmf", data=data, name="image_only", stage1_text=False, evaluate=False, **SMALL)
    assert control.record["stages"] == ["stage1", "stage2"] and "accuracy_text" not in control.history
