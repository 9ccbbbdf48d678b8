"""CoOp / IVLP / PromptSRC on CLIP-ReID's stages, PromptSRC's Gaussian prompt aggregation, and the zero-shot modes
named as what they are (true zero-shot, attribute-text oracle)."""

import pytest
import torch
import torch.nn as nn
from reid_fakes import fake_dataset

from reidlab.engine import seed_everything
from reidlab.methods import build_model, get_preset, run
from reidlab.methods.clip_stages import PromptAggregation, gaussian_epoch_weights
from reidlab.methods.clip_zero_shot import (
    ORACLE_NOTE,
    AttributeTextOracle,
    market_attribute_sentence,
    zero_shot_model,
)
from reidlab.models.clip_reid import clip_reid_tiny
from reidlab.models.clip_text import ClipTextEncoder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fake_dataset(tmp_path_factory.mktemp("clip_prompts"), num_ids=6, per_id=4, size=(32, 16))


def _preset(mode, **overrides):
    settings = dict(pretrained=False, image_size=(32, 16), batch_p=3, batch_k=4, fast_data=False, stage1_epochs=2,
                    stage1_batch=8, epochs=1, progress=False, mode=mode)  # fmt: skip
    return get_preset("clip_prompts", "smoke", **{**settings, **overrides})


def _changed(before, model):
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_gaussian_aggregation_weights_sum_to_one_and_touch_the_prompts_only():
    w = gaussian_epoch_weights(120, 60, 45)
    assert w.shape == (120,) and abs(float(w.sum()) - 1) < 1e-12 and int(w.argmax()) == 59
    model = nn.Module()
    model.prompt = nn.Parameter(torch.zeros(2, 3))
    model.weight = nn.Parameter(torch.ones(4))
    weights = gaussian_epoch_weights(3, 1.5, 1.0)
    gpa = PromptAggregation([("prompt", model.prompt)], weights)
    seen = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.prompt.fill_(float(epoch))
            model.weight.fill_(10.0 * epoch)
        seen.append(model.prompt.detach().clone())
        gpa.add_epoch(epoch)
        gpa.add_epoch(epoch)  # an epoch counts once (a resumed stage may call again)
    gpa.apply()
    torch.testing.assert_close(model.prompt.detach(), sum(w * p for w, p in zip(weights.float(), seen, strict=True)))
    assert torch.equal(model.weight.detach(), torch.full((4,), 30.0))  # other parameters keep their values
    assert set(gpa.state_dict()) == {"weights", "sum_0", "added"}


def test_text_deep_prompts_overwrite_positions_one_to_n():
    from reidlab.models.lab_clip import create_lab_clip

    clip, tokenizer = create_lab_clip(pretrained=False)
    encoder = ClipTextEncoder(clip, prompt_tokens=2).eval()
    assert encoder.prompt_deep.shape == (3, 2, 128)  # blocks 1..3 of the 4
    tokens = tokenizer(["a photo of a man in a red shirt"])
    length = int(tokens.argmax()) + 1
    x = clip.token_embedding(tokens)[:, :length] + clip.positional_embedding[:length]
    mask = clip.attn_mask[: x.shape[1], : x.shape[1]]
    for i, block in enumerate(clip.transformer.resblocks):
        if i > 0:
            x = torch.cat([x[:, :1], encoder.prompt_deep[i - 1][None], x[:, 3:]], dim=1)
        x = block(x, attn_mask=mask)
    expected = clip.ln_final(x)[:, -1] @ clip.text_projection
    with torch.no_grad():
        torch.testing.assert_close(encoder.encode(tokens), expected.detach())


def test_visual_prompts_are_appended_and_replaced_per_block():
    torch.manual_seed(0)
    model = clip_reid_tiny(num_classes=3, pretrained=False, visual_prompts=2, text_prompts=2).eval()
    enc = model.image_encoder
    x = torch.randn(2, 3, 128, 64)
    assert enc.embed(x).shape[1] == 1 + 32 + 2 and enc.prompt_deep.shape == (3, 2, 192)
    before = enc(x)["f"]
    with torch.no_grad():  # the prompts at the input of the last block only (not a constant: LayerNorm removes it)
        enc.prompt_deep[2].add_(torch.randn_like(enc.prompt_deep[2]))
    after = enc(x)
    assert not torch.allclose(before, after["f"])
    names = {n for n, _ in model.prompt_parameters()}
    assert names == {"image_encoder.prompt_shallow", "image_encoder.prompt_deep", "text_encoder.prompt_deep",
                     "prompt_learner.cls_ctx"}  # fmt: skip


def test_coop_learns_five_tokens_on_cached_features(data, tmp_path):
    preset = _preset("coop")
    assert preset.prompt_template == "A photo of X X X X X person." and preset.deep_prompts == 0
    seed_everything(preset.seed)
    start, _ = build_model("clip_prompts", preset, data)
    assert start.prompt_learner.count == 5 and not start.prompt_parameters()[0][0].startswith("image_encoder")
    result = run("clip_prompts", preset, data, run_dir=tmp_path / "coop", stop_after=("stage1", 2), evaluate=False,
                 device="cpu")  # fmt: skip
    assert _changed(start.state_dict(), result.model) == {"prompt_learner.cls_ctx"}
    assert (tmp_path / "coop" / "stage1_image_features.pt").is_file()


def test_ivlp_stage1_trains_every_prompt_and_nothing_else_then_stage2_freezes_them(data, tmp_path):
    preset = _preset("ivlp")
    seed_everything(preset.seed)
    start, _ = build_model("clip_prompts", preset, data)
    folder = tmp_path / "ivlp"
    first = run("clip_prompts", preset, data, run_dir=folder, stop_after=("stage1", 2), evaluate=False, device="cpu")
    prompts = {"image_encoder.prompt_shallow", "image_encoder.prompt_deep", "text_encoder.prompt_deep",
               "prompt_learner.cls_ctx"}  # fmt: skip
    assert _changed(start.state_dict(), first.model) == prompts
    after_stage1 = {k: v.clone() for k, v in first.model.state_dict().items()}
    final = run("clip_prompts", preset, data, run_dir=folder, resume=True, device="cpu")
    changed = _changed(after_stage1, final.model)
    assert not changed & prompts and not any(k.startswith("text_encoder.") for k in changed)
    assert any(k.startswith("image_encoder.visual.") for k in changed)


def test_promptsrc_aggregates_prompts_and_keeps_its_zero_shot_encoder(data, tmp_path):
    preset = _preset("promptsrc", stage1_epochs=3)
    seed_everything(preset.seed)
    start, loss = build_model("clip_prompts", preset, data)
    assert loss.self_consistency_weight == 1.0 and start.self_consistency_encoder is not None
    result = run("clip_prompts", preset, data, run_dir=tmp_path / "src", device="cpu")
    frozen = {k for k in _changed(start.state_dict(), result.model) if k.startswith("self_consistency_encoder.")}
    assert not frozen
    assert "consistency" in result.history.columns and result.history["consistency"].notna().any()
    assert 0.0 <= result.train.stage_outputs["stage1"]["i2t_accuracy"] <= 1.0


def test_unlocked_text_encoder_really_trains_in_stage2(data, tmp_path):
    preset = _preset("ivlp", stage1_epochs=1, text_stage2="unlocked")
    folder = tmp_path / "unlocked"
    first = run("clip_prompts", preset, data, run_dir=folder, stop_after=("stage1", 1), evaluate=False, device="cpu")
    before = {k: v.clone() for k, v in first.model.state_dict().items()}
    final = run("clip_prompts", preset, data, run_dir=folder, resume=True, evaluate=False, device="cpu")
    changed = _changed(before, final.model)
    assert any(k.startswith("text_encoder.transformer.") for k in changed)  # the seed's "unlocked" changed nothing
    assert not any("prompt" in k for k in changed)


def test_true_zero_shot_is_clips_image_embedding_and_the_oracle_is_labelled():
    model = zero_shot_model(pretrained=False)
    x = torch.randn(3, 3, 128, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model.image_encoder(x)["f_proj"])
    assert model.embed_dim == model.proj_dim and not model.training
    sentences = {1: ["a man in a red shirt"], 2: ["a woman in a blue skirt", "a woman with a handbag"]}
    oracle = AttributeTextOracle(model, sentences)
    assert oracle.note == ORACLE_NOTE and "test identities" in oracle.note and "not zero-shot" in oracle.note
    with torch.no_grad():
        out = oracle(x)
    assert out.shape == (3, model.feat_dim + 2)
    torch.testing.assert_close(out[:, model.feat_dim :].sum(1), torch.ones(3))
    with torch.no_grad():
        assert AttributeTextOracle(model, sentences, mode="text")(x).shape == (3, 2)


def test_market_attributes_become_a_sentence_without_the_identity_number():
    decoded = {"age": "adult", "gender": "female", "hair": "long hair", "up": "short sleeves", "down": "long "
               "lower-body clothing", "clothes": "pants", "carrying": ["backpack", "hat"], "up_colors": ["red"],
               "down_colors": ["black"]}  # fmt: skip
    sentence = market_attribute_sentence(decoded)
    assert sentence == ("a adult female person with long hair, red short sleeves, black long lower-body clothing "
                        "pants, wearing a hat, carrying a backpack.")  # fmt: skip
    assert "no." not in sentence
