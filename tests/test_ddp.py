"""The DDP code path on CPU: 2 processes, gloo backend, one training epoch and gathered feature extraction."""

import os
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reid_fakes import fake_dataset, samples_from_folder  # noqa: E402

from reidlab.engine import build_test_loader, extract_features, fit, load_trained_model  # noqa: E402
from reidlab.losses import BoTLoss  # noqa: E402
from reidlab.models import create_model  # noqa: E402

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, root: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        train = samples_from_folder(Path(root) / "data" / "train")
        test = samples_from_folder(Path(root) / "data" / "test")
        torch.manual_seed(0)
        model = create_model("bot_resnet18", num_classes=8, pretrained=False)
        loss = BoTLoss(num_classes=8, feat_dim=model.embed_dim, center_weight=5e-4)
        result = fit(
            model, loss, train, run_dir=Path(root) / "run", device="cpu", epochs=1, max_iters_per_epoch=2,
            image_size=(32, 16), batch_p=4, batch_k=2, num_workers=0, warmup_epochs=0, milestones=(5,),
            progress=False,
        )  # fmt: skip
        flat = torch.cat([p.detach().flatten() for p in result.model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(WORLD)]
        dist.all_gather(gathered, flat)
        centres = [torch.empty_like(loss.center.centers.data) for _ in range(WORLD)]
        dist.all_gather(centres, loss.center.centers.data.contiguous())
        samples = test[:11]  # 11 images: DistributedSampler pads one repeat
        loader = build_test_loader(samples, image_size=(32, 16), batch_size=4)
        feats = extract_features(result.model, loader, "cpu")
        torch.save(
            {
                "same_weights": all(torch.equal(g, gathered[0]) for g in gathered),
                "same_centres": all(torch.equal(c, centres[0]) for c in centres),
                "iterations": int(result.history["iterations"].iloc[0]),
                "images_per_s": float(result.history["images_per_s"].iloc[0]),
                "shard": len(loader),
                "feats": feats,
                "num_samples": len(samples),
            },
            Path(root) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_gloo(tmp_path):
    fake_dataset(tmp_path / "data", num_ids=8, per_id=4)  # written once, read by both ranks
    mp.spawn(_worker, args=(str(tmp_path), _free_port()), nprocs=WORLD, join=True)
    outs = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for out in outs:
        assert out["same_weights"] and out["same_centres"]  # DDP synchronised every update
        assert out["iterations"] == 2
        assert out["shard"] == 2  # 6 of the 12 padded indices per rank, batches of 4
    # gathered features: every rank has all 11 in dataset order, padding duplicate dropped
    reference_model = load_trained_model(tmp_path / "run")
    samples_n = outs[0]["num_samples"]
    loader = build_test_loader(samples_from_folder(tmp_path / "data" / "test")[:11], image_size=(32, 16), batch_size=4)
    reference = extract_features(reference_model, loader, "cpu")
    for out in outs:
        feats = out["feats"]
        assert feats["features"].shape[0] == samples_n == 11
        assert torch.equal(feats["indices"], torch.arange(11))
        assert torch.equal(feats["pids"], reference["pids"]) and torch.equal(feats["camids"], reference["camids"])
        assert torch.allclose(feats["features"], reference["features"], atol=1e-4)
