"""step: the per-step training cost of Mosaic's loop against bare PyTorch loops on the tutorial model."""

import importlib.util
import os
import shutil
import time

from harness import STEP_PIPELINE, Contention, check, median, spread, table, tutorial_folder

NAME = "step"
# The original report's plain-PyTorch loop on the tutorial model, per epoch, when the original was timed.
ORIGINAL_BARE_EPOCH_S = 0.062
REPLICATES = 4  # the tutorial's multiplicity
# The long mode's last run (benchmarks/results-original-400.md, 2026-11-28, 124 s against 1083 s), in seconds:
# Mosaic's wall minus its training (24 runs x 400 epochs x the epoch time here, 23.4 ms / 2 cores), the original's.
LONG_MODE = (12, 1083)


def add_arguments(parser):
    parser.add_argument("--step-reps", type=int, default=7, help="step: repetitions (default 7)")
    parser.add_argument("--step-epochs", type=int, default=10, help="step: timed epochs a repetition (default 10)")
    parser.add_argument("--step-run-epochs", type=int, default=40,
                        help="step: epochs of each whole train_run (default 40)")


def import_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Variant:
    """One way of training the tutorial model: build() gives (train_epoch, eval_epoch) callables."""

    def __init__(self, name, build, note="", runs=1):
        self.name, self.build, self.note, self.runs = name, build, note, runs  # runs: trained at once
        self.train_us, self.eval_us, self.epoch_ms = [], [], []


def step_variants(work):
    """The loops compared, all on mlp_brick(4,3), dataset_OR (200 samples, 80 % train), batch 1, MSE,
    Adam lr 1e-2."""
    import torch

    from mosaic.experiment import load_experiment
    from mosaic.run import training
    from mosaic.run.optimizer import make_optimizer

    ini = tutorial_folder(work, {("MONITOR", "multiplicity"): 1})
    experiment = load_experiment(ini)
    run = next(r for r in experiment.runs if STEP_PIPELINE in r.pipeline)
    mlp = import_file(os.path.join(work, "mlp.py"), "bench_mlp")
    dataset = import_file(os.path.join(work, "dataset.py"), "bench_dataset")

    def bare_model(fused):
        torch.manual_seed(run.seed)
        train_loader, test_loader = dataset.dataset_OR(1, 200, 0.8).prepare(None, {}, {})
        model = mlp.mlp_brick(2, 1, 4, 3)
        # the tutorial's forward takes (data, run_info, module_info): model(x, None, None)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, **({"fused": True} if fused else {}))
        return model, optimizer, torch.nn.MSELoss(), train_loader, test_loader

    def bare(fused, materialized):
        def build():
            model, opt, crit, train_loader, test_loader = bare_model(fused)
            train_batches = list(train_loader) if materialized else train_loader
            test_batches = list(test_loader) if materialized else test_loader

            def train_epoch():
                model.train()
                for x, y in train_batches:
                    opt.zero_grad()
                    loss = crit(model(x, None, None).squeeze(), y.squeeze())
                    loss.backward()
                    opt.step()

            def eval_epoch():
                model.eval()
                total = 0.0
                with torch.no_grad():
                    for x, y in test_batches:
                        total += crit(model(x, None, None).squeeze(), y.squeeze()).item()
                return total / len(test_batches)

            return train_epoch, eval_epoch, len(train_batches), len(test_batches)

        return build

    def replicates(count):
        """Another design for the 400-epoch target, measured, not built: `count` replicates (seeds) of the model
        stacked and trained in one process with torch.func.vmap, each on its own shuffled order; one fused
        Adam over the stacked parameters. Figures are per replicate step."""
        def build():
            import copy

            from torch.func import functional_call, stack_module_state, vmap

            models = []
            for seed in range(count):
                torch.manual_seed(run.seed + seed)
                models.append(mlp.mlp_brick(2, 1, 4, 3))
            params, _ = stack_module_state(models)
            skeleton = copy.deepcopy(models[0]).to("meta")
            optimizer = torch.optim.Adam(list(params.values()), lr=1e-2, fused=True)
            crit = torch.nn.MSELoss()
            train_loader, test_loader = dataset.dataset_OR(1, 200, 0.8).prepare(None, {}, {})
            train_x, train_y = (torch.stack(part) for part in zip(*train_loader))
            test_x, test_y = (torch.stack(part) for part in zip(*test_loader))

            def loss_of(p, x, y):
                return crit(functional_call(skeleton, p, (x, None, None)).squeeze(), y.squeeze())

            batched_loss = vmap(loss_of)

            def train_epoch():
                order = torch.stack([torch.randperm(len(train_x)) for _ in range(count)])
                for step in range(len(train_x)):
                    pick = order[:, step]
                    optimizer.zero_grad()
                    batched_loss(params, train_x[pick], train_y[pick]).sum().backward()
                    optimizer.step()

            def eval_epoch():
                total = torch.zeros(count)
                with torch.no_grad():
                    for x, y in zip(test_x, test_y):
                        total += batched_loss(params, x.expand(count, *x.shape), y.expand(count, *y.shape))
                return total / len(test_x)

            return train_epoch, eval_epoch, len(train_x) * count, len(test_x) * count

        return build

    def mosaic(traced):
        def build():
            training.seed_everything(run.seed)
            pipeline = training.Pipeline(run, experiment, "cpu")
            # the ini's default (no tracer), or traced_step = True (traced after its first step)
            tracer = training.TracedStep(pipeline, lambda line: None) if traced else None
            optimizer = make_optimizer(experiment, pipeline.parameters)
            train_batches = training.batch_source(pipeline.train_loader, "cpu")
            test_batches = training.batch_source(pipeline.test_loader, "cpu")
            n_train, n_test = len(list(train_batches())), len(list(test_batches()))
            return (
                lambda: training.train_epoch(pipeline, train_batches(), optimizer, tracer),
                lambda: training.evaluate(pipeline, test_batches()),
                n_train,
                n_test,
            )

        return build

    return run, experiment, [
        Variant("bare PyTorch: DataLoader, default Adam", bare(False, False),
                "the obvious loop: `for x, y in loader`, `Adam(...)`"),
        Variant("bare PyTorch: batches in a list, default Adam", bare(False, True),
                "the same, DataLoader iterated once beforehand"),
        Variant("bare PyTorch: batches in a list, Adam(fused=True)", bare(True, True),
                "the best a hand-written loop does"),
        Variant("Mosaic, default (eager step)", mosaic(False),
                "Pipeline from the ini, make_optimizer, batch_source; forward and backward through autograd"),
        Variant("Mosaic, traced_step = True (opt-in)", mosaic(True),
                "the same, the step traced once and replayed"),
        Variant(f"{REPLICATES} replicates batched (torch.func.vmap), per replicate", replicates(REPLICATES),
                "another design, not built: one process trains several runs as one stacked model (one job "
                "per run no more; not bit-identical to a run trained alone)",
                runs=REPLICATES),
    ]


def measure_variant(variant, epochs):
    train_epoch, eval_epoch, n_train, n_test = variant.build()
    train_epoch()  # warm-up: optimizer state, allocator, lazy initialisation
    eval_epoch()
    train_s = eval_s = 0.0
    for _ in range(epochs):
        tick = time.perf_counter()
        train_epoch()
        tock = time.perf_counter()
        eval_epoch()
        train_s += tock - tick
        eval_s += time.perf_counter() - tock
    variant.train_us.append(train_s / (epochs * n_train) * 1e6)
    variant.eval_us.append(eval_s / (epochs * n_test) * 1e6)
    variant.epoch_ms.append((train_s + eval_s) / epochs / variant.runs * 1e3)
    return n_train, n_test


def measure_train_run(experiment, run, epochs, log_path):
    """Mosaic's whole train_run (seeding, data, model, checkpoints every tenth, final save), in-process."""
    from mosaic import runfiles
    from mosaic.run import training

    folder = runfiles.run_dir(experiment.process.run_files_path, run.run_hash)
    shutil.rmtree(folder, ignore_errors=True)
    with open(log_path, "w") as log:
        tick = time.perf_counter()
        training.train_run(experiment, run, target_epochs=epochs,
                           log=lambda line: print(line, file=log, flush=True))
        wall = time.perf_counter() - tick
    rows = runfiles.read_losses(os.path.join(folder, runfiles.LOSSES))
    epoch_s = [row[3] for row in rows]
    return wall, epoch_s


def run(args, work):
    import torch

    torch.set_num_threads(1)
    reps, epochs = (3, 3) if args.quick else (args.step_reps, args.step_epochs)
    run_epochs = 20 if args.quick else args.step_run_epochs
    contention = Contention()
    run, experiment, variants = step_variants(os.path.join(work, "step"))
    n_train = n_test = None
    train_run_walls, train_run_epochs, train_run_setup = [], [], []
    for rep in range(reps):
        order = variants[rep % len(variants):] + variants[: rep % len(variants)]  # interleaved, rotated
        for variant in order:
            steps = measure_variant(variant, epochs)
            if variant is variants[3]:
                n_train, n_test = steps  # a run's (the batched variant counts every replicate's)
        log = os.path.join(work, "step", "train.log")
        wall, epoch_s = measure_train_run(experiment, run, run_epochs, log)
        train_run_walls.append(wall / run_epochs)
        train_run_epochs.append(median(epoch_s))
        train_run_setup.append(wall - sum(epoch_s))
    load = contention.report()

    base = median(variants[0].train_us)
    best = median(variants[2].train_us)
    rows = []
    for variant in variants:
        train_us = median(variant.train_us)
        rows.append([
            variant.name,
            f"**{train_us:.0f}** ({spread(variant.train_us)})",
            f"{median(variant.eval_us):.0f}",
            f"{median(variant.epoch_ms):.1f}",
            f"{train_us / base:.2f}",
            f"**{train_us / best:.2f}**",
            variant.note,
        ])
    check("step: Mosaic's train step (default) / the best bare PyTorch loop", median(variants[3].train_us) / best,
          1.10, unit="x")
    check("step: Mosaic's train step (traced_step = True) / the best bare PyTorch loop",
          median(variants[4].train_us) / best, 1.10, unit="x")
    per_epoch_run = median(train_run_walls) * 1e3
    rows.append([
        f"Mosaic: whole train_run, {run_epochs} epochs",
        "", "",
        f"{median(train_run_epochs) * 1e3:.1f} per epoch; {per_epoch_run:.1f} with set-up and saves",
        "", f"{median(train_run_epochs) * 1e3 / median(variants[2].epoch_ms):.2f} (epoch)",
        f"set-up + checkpoints + final save: {median(train_run_setup) * 1e3:.0f} ms a run",
    ])
    header = ["loop", "train us/step (min-max)", "eval us/step", "epoch ms", "/ bare DataLoader",
              "/ bare best", "what it is"]
    text = [
        "## step: per-step cost, Mosaic against a bare PyTorch loop",
        "",
        f"Tutorial model {STEP_PIPELINE} ({sum(p.numel() for p in training_parameters(run, experiment))} "
        f"parameters), dataset_OR data_size 200: {n_train} train steps + {n_test} eval steps per epoch, "
        f"batch 1, MSELoss, Adam lr 1e-2, torch.set_num_threads(1), one process. Median of {reps} "
        f"repetitions (interleaved) of {epochs} epochs each after one warm-up epoch; train_run: median of "
        f"{reps} runs of {run_epochs} epochs. Reference: the original report's bare loop took "
        f"{ORIGINAL_BARE_EPOCH_S * 1e3:.0f} ms/epoch; target: Mosaic within 10 % of the bare loop.",
        "",
        table(header, rows),
        "",
        long_mode_projection(*(median(variants[i].epoch_ms) for i in (4, 3, 5))),
        "",
        load,
        "",
    ]
    return "\n".join(text)


def long_mode_projection(traced_ms, eager_ms, batched_ms):
    """The long mode's ratio (24 runs x 400 epochs of training on 2 cores, plus the rest of its last
    measured wall, over the original's) with each epoch measured here."""
    rest, original = LONG_MODE

    def ratio(epoch_ms):
        return (rest + 24 * 400 * epoch_ms / 1e3 / 2) / original

    return (f"The long mode (24 runs x 400 epochs on 2 cores against the original's {original} s, "
            f"benchmarks/results-original-400.md, plus {rest} s of jobs, database and plots) would take about "
            f"**{ratio(traced_ms):.2f}x** the original's wall with Mosaic's epoch measured here, "
            f"with traced_step = True, {ratio(eager_ms):.2f}x with the default eager step and "
            f"{ratio(batched_ms):.2f}x with the replicates batched (target 0.15x). The traced step is opt-in (its "
            "contract: a pure forward); batching replicates would give up per-run jobs and bit-identical "
            "results.\n\n")


def training_parameters(run, experiment):
    from mosaic.run import training

    pipeline = training.Pipeline(run, experiment, "cpu")
    return pipeline.parameters

