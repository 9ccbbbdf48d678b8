"""What DMF's text does, in numbers: the notebook's analyses of a trained :class:`~reidlab.models.dmf.DMF`.

* :func:`modality_embeddings` — image and text CLS embeddings of the same identities (for one 2-D map);
* :func:`text_to_image` — text-to-image retrieval: each query image's sentence ranks the gallery *images* (Market
  protocol, standard AP), how well the shared space holds both modalities, on seen or unseen identities;
* :func:`group_ablation` — the same with one attribute group dropped from every sentence: what each group carries;
* :func:`text_attention` — in the concatenated variant, how much of the image tokens' attention goes to each text
  token (softmax of a block, heads and image queries averaged).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from reidlab.data import ReIDDataset
from reidlab.data.attribute_sentences import SentenceSource
from reidlab.engine import extract_split_features, load_trained_model, protocol_for
from reidlab.evaluation import RankResult, evaluate
from reidlab.methods.dmf import STAGE1_FILE
from reidlab.models.dmf import DMF
from reidlab.models.reid_beit import ReIDBeitViT, attention_mask, block_attention, run_blocks


def stage1_model(run_dir: str | Path) -> DMF:
    """The model as stage I left it (``stage1_model.pt`` in a DMF run folder), in eval mode."""
    path = Path(run_dir) / STAGE1_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the run had no stage I (stage1_epochs=0, or a set without "
                                "attributes), or it was trained before stage I saved its model")  # fmt: skip
    return load_trained_model(path)


@torch.no_grad()
def encode_texts(model: DMF, texts: Sequence[str], batch_size: int = 128) -> torch.Tensor:
    """Text CLS embeddings ``(T, D)`` on the CPU (distinct texts encoded once)."""
    model.eval()
    unique = list(dict.fromkeys(texts))
    chunks = [model.encode_texts(unique[i : i + batch_size]).float().cpu() for i in range(0, len(unique), batch_size)]
    table = torch.cat(chunks)
    index = {t: i for i, t in enumerate(unique)}
    return table[[index[t] for t in texts]]


def modality_embeddings(model: DMF, dataset: ReIDDataset, source: SentenceSource, *, num_ids: int = 12,
                        seed: int = 0, device: torch.device | str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Image and text embeddings of ``num_ids`` random training identities: ``{"image", "image_pids", "text",
    "text_pids", "texts"}`` (one text per distinct sentence of an identity)."""
    pids = sorted({s.pid for s in dataset.train})
    chosen = set(np.random.default_rng(seed).choice(pids, min(num_ids, len(pids)), replace=False).tolist())
    samples = [s for s in dataset.train if s.pid in chosen]
    image = extract_split_features(model.to(device), samples, device=device)
    pairs = list(dict.fromkeys((source.sentence(s, "train"), s.pid) for s in samples))
    text = encode_texts(model, [t for t, _ in pairs])
    return {"image": image["features"], "image_pids": image["pids"].numpy(), "text": text,
            "text_pids": np.array([p for _, p in pairs]), "texts": [t for t, _ in pairs]}  # fmt: skip


def alignment(embeddings: Mapping[str, Any]) -> dict[str, float]:
    """How the two modalities sit in the shared space (cosine on features centred by the mean of both): mean cosine
    of a text to the images of its identity vs to the images of other identities, and the share of texts whose
    nearest identity centroid (of images) is their own."""
    image, text = embeddings["image"].float(), embeddings["text"].float()
    centre = torch.cat([image, text]).mean(0, keepdim=True)
    image = torch.nn.functional.normalize(image - centre, dim=1)
    text = torch.nn.functional.normalize(text - centre, dim=1)
    ipids, tpids = np.asarray(embeddings["image_pids"]), np.asarray(embeddings["text_pids"])
    ids = np.unique(ipids)
    centroids = torch.nn.functional.normalize(torch.stack([image[ipids == p].mean(0) for p in ids]), dim=1)
    cos = text @ image.T
    same = torch.as_tensor(tpids[:, None] == ipids[None, :])
    nearest = ids[(text @ centroids.T).argmax(1).numpy()]
    return {"text-image cosine, same identity": float(cos[same].mean()),
            "text-image cosine, other identities": float(cos[~same].mean()),
            "texts nearest their own identity's images": float((nearest == tpids).mean())}  # fmt: skip


def text_queries(dataset: ReIDDataset, source: SentenceSource, drop: Iterable[str] = (), split: str = "test"
                 ) -> list[str]:  # fmt: skip
    """The sentence of every query image of ``dataset`` (its identity's attributes and the image's view; ``split``
    names the identities' split where a source keys them per split: ``test`` for a test set, ``train`` for query
    images carved from training identities)."""
    return [source.sentence(s, split, tuple(drop)) for s in dataset.query]


def text_to_image(model: DMF, dataset: ReIDDataset, source: SentenceSource, *, drop: Iterable[str] = (),
                  split: str = "test", gallery: dict[str, torch.Tensor] | None = None,
                  device: torch.device | str = "cpu") -> RankResult:  # fmt: skip
    """Each query image's sentence ranks the gallery images (query camera kept: same-camera matches removed as in
    the Market protocol). ``gallery``: precomputed :func:`extract_split_features` of ``dataset.gallery``."""
    model.to(device).eval()
    g = gallery if gallery is not None else extract_split_features(model, dataset.gallery, device=device)
    q = encode_texts(model, text_queries(dataset, source, drop, split))
    q_pids = np.array([s.pid for s in dataset.query])
    q_cams = np.array([s.camid for s in dataset.query])
    return evaluate(q, g["features"], q_pids, g["pids"].numpy(), q_cams, g["camids"].numpy(), metric="cosine",
                    protocol=protocol_for(dataset))  # fmt: skip


def group_ablation(model: DMF, dataset: ReIDDataset, source: SentenceSource, *, split: str = "test",
                   device: torch.device | str = "cpu") -> pd.DataFrame:  # fmt: skip
    """Text-to-image retrieval with every group, then with each group dropped from every sentence: one row per
    setting with R1 / mAP (%) and the change against the full sentences."""
    model.to(device).eval()
    gallery = extract_split_features(model, dataset.gallery, device=device)
    rows = []
    for group in (None, *source.groups):
        rank = text_to_image(model, dataset, source, drop=() if group is None else (group,), split=split,
                             gallery=gallery, device=device)  # fmt: skip
        rows.append({"sentences": "all groups" if group is None else f"without {group}", "R1": 100 * rank.rank(1),
                     "mAP": 100 * rank.mAP})  # fmt: skip
    table = pd.DataFrame(rows)
    table["Δ mAP"] = table["mAP"] - table.loc[0, "mAP"]
    table["Δ R1"] = table["R1"] - table.loc[0, "R1"]
    return table


@torch.no_grad()
def text_attention(model: DMF, images: torch.Tensor, texts: Sequence[str], *, block: int = -1) -> dict[str, Any]:
    """Attention of the image tokens (CLS and patches) to the text tokens in the concatenated sequence at ``block``
    (heads and image queries averaged): ``{"weights": (B, L) per text token, "text_share": (B,) attention mass on
    text, "tokens": readable tokens per text}``."""
    model.eval()
    images = images.to(next(model.parameters()).device)
    x, valid, n = model.fused_sequence(images, texts)
    depth = len(model.vit.blocks)
    index = block % depth
    tokens, _ = run_blocks(model.vit, x, image_tokens=n, key_valid=valid, depth=index)
    bias = model.vit.attention_biases()[index] if isinstance(model.vit, ReIDBeitViT) else None
    probs = block_attention(model.vit.blocks[index], tokens, attention_mask(bias, n, x.shape[1], valid))
    to_text = probs[:, :, :n, n:].mean(dim=(1, 2))  # (B, L)
    names = [model.text_encoder.token_strings(t) for t in texts]  # the fused sequence has no text CLS
    return {"weights": to_text.float().cpu(), "text_share": to_text.sum(1).float().cpu(), "tokens": names}

