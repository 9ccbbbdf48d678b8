"""P x K and cross-modality samplers: batch structure, determinism, replacement, DDP sharding, resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from reidlab.data import CrossModalitySampler, ImageDataset, PKSampler, Sample


def make_pids(seed: int = 0, ids: int = 12) -> list[int]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 12, size=ids)
    counts[0] = 2  # at least one identity below K
    pids = np.repeat(np.arange(ids) * 10 + 3, counts)  # non-contiguous labels
    return rng.permutation(pids).tolist()


def batches_of(sampler, size: int | None = None) -> list[list[int]]:
    flat = list(sampler)
    size = size or sampler.batch_size
    assert len(flat) % size == 0
    return [flat[i : i + size] for i in range(0, len(flat), size)]


def test_pk_batches_hold_p_identities_with_k_images_each():
    pids = make_pids()
    sampler = PKSampler(pids, p=4, k=4, seed=1)
    expected_len = len(sampler)
    batches = batches_of(sampler)
    assert len(batches) * 16 == expected_len and len(batches) > 3
    for batch in batches:
        labels = [pids[i] for i in batch]
        assert Counter(labels) == Counter({label: 4 for label in set(labels)}) and len(set(labels)) == 4
        for block in range(4):  # identities come in consecutive blocks of K
            assert len({pids[i] for i in batch[block * 4 : block * 4 + 4]}) == 1


def test_pk_identity_with_fewer_than_k_images_is_drawn_with_replacement():
    pids = [0, 0] + [1] * 8 + [2] * 8 + [3] * 8
    sampler = PKSampler(pids, p=4, k=4, seed=0)
    batch = batches_of(sampler)[0]
    small = [i for i in batch if pids[i] == 0]
    assert len(small) == 4 and set(small) == {0, 1}  # both images used, then repeats


def test_pk_deterministic_under_seed_and_epoch_and_auto_advance():
    pids = make_pids()
    a, b = PKSampler(pids, 4, 4, seed=5), PKSampler(pids, 4, 4, seed=5)
    first_a, first_b = list(a), list(b)
    assert first_a == first_b
    second_a = list(a)  # auto-advanced to epoch 1
    b.set_epoch(1)
    assert second_a == list(b) and second_a != first_a
    assert list(PKSampler(pids, 4, 4, seed=6)) != first_a
    c = PKSampler(pids, 4, 4, seed=5)
    c.set_epoch(0)
    assert list(c) == first_a


def test_pk_state_dict_resumes_exactly_including_inside_an_epoch():
    pids = make_pids()
    sampler = PKSampler(pids, 4, 4, seed=2)
    list(sampler)
    state = sampler.state_dict()
    expected = list(sampler)
    resumed = PKSampler(pids, 4, 4, seed=2)
    resumed.load_state_dict(state)
    assert list(resumed) == expected
    resumed.set_epoch(1, start_batch=2)
    assert len(resumed) == len(expected) - 32 and list(resumed) == expected[32:]
    with pytest.raises(ValueError, match="seed"):
        PKSampler(pids, 4, 4, seed=3).load_state_dict(state)


@pytest.mark.parametrize("world_size", [2, 3])
def test_pk_ddp_shards_are_disjoint_equal_and_complete(world_size):
    pids = make_pids(ids=20)
    full = batches_of(PKSampler(pids, 4, 2, seed=9, rank=0, world_size=1))
    shards = [batches_of(PKSampler(pids, 4, 2, seed=9, rank=r, world_size=world_size)) for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1  # equal number of whole batches per rank
    per_rank = len(full) // world_size
    assert len(shards[0]) == per_rank
    gathered = [batch for step in zip(*shards, strict=True) for batch in step]
    assert gathered == full[: per_rank * world_size]  # disjoint and together the whole usable epoch


def test_pk_rejects_impossible_arguments():
    with pytest.raises(ValueError, match="identities cannot fill"):
        PKSampler([0, 0, 1], p=3, k=2)
    with pytest.raises(ValueError, match="rank"):
        PKSampler([0, 1, 2], p=2, k=2, rank=2, world_size=2)


def modality_samples(tmp_path=None) -> list[Sample]:
    samples = []
    for pid, (n_rgb, n_ir) in enumerate([(6, 5), (2, 7), (9, 1), (4, 4), (5, 6), (3, 0)]):
        samples += [Sample(f"/x/{pid}_rgb_{i}.jpg", pid, 0, "rgb") for i in range(n_rgb)]
        samples += [Sample(f"/x/{pid}_ir_{i}.jpg", pid, 2, "ir") for i in range(n_ir)]
    return list(np.random.default_rng(0).permutation(np.array(samples, dtype=object)))


def test_cross_modality_batches_have_k_rgb_and_k_ir_per_identity():
    samples = modality_samples()
    sampler = CrossModalitySampler.from_samples(samples, p=2, k=2, seed=4)
    assert sampler.batch_size == 8 and sampler.excluded_pids == [5]
    batches = batches_of(sampler)
    assert batches
    for batch in batches:
        pids = [samples[i].pid for i in batch]
        assert len(set(pids)) == 2
        for pid in set(pids):
            mods = Counter(samples[i].modality for i in batch if samples[i].pid == pid)
            assert mods == Counter({"rgb": 2, "ir": 2})
    assert list(CrossModalitySampler.from_samples(samples, 2, 2, seed=4)) == sum(batches, [])


def test_cross_modality_labels_come_from_samples_through_the_loader(tmp_path):
    samples = []
    for pid in range(3):
        for modality, n in (("rgb", 3), ("ir", 2)):
            for i in range(n):
                path = tmp_path / f"{pid}_{modality}_{i}.png"
                Image.new("RGB" if modality == "rgb" else "L", (4, 8), 100).save(path)
                samples.append(Sample(str(path), pid, 0 if modality == "rgb" else 1, modality))
    sampler = CrossModalitySampler.from_samples(samples, p=2, k=2, seed=0, world_size=1, rank=0)
    loader = DataLoader(ImageDataset(samples), batch_size=sampler.batch_size, sampler=sampler, drop_last=True)
    for batch in loader:
        modality = batch["modality"]
        assert batch["image"].shape == (8, 3, 8, 4)
        expected = torch.tensor([samples[i].modality == "ir" for i in batch["index"].tolist()], dtype=torch.long)
        assert torch.equal(modality, expected) and int(modality.sum()) == 4
