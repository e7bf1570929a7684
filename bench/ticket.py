"""Benchmark of lottery tickets trained data-free on mnist5k: the ticket (its mask and its original
initialisation) against the control that keeps the mask but re-initialises the weights at random,
over several training seeds. Writes Markdown.

The ticket is found once, with data (iterative magnitude pruning, as flags/ticket_mnist5k.cfg:
LeNet-5, 5 rounds x 1,000 SGD steps, 20 % of the remaining weights per round, so 0.8^5 = 33 % of
the prunable weights kept). Each seed then trains both students data-free with the same settings.
The paper (Zhu et al., +1.1 to +1.6 points for the ticket on CIFAR-10 WRN-16-2) trains far longer
than the 150 data-free iterations used here by default.

The ticket's original initialisation comes from `--ticket_seed`; the control's fresh weights
from `pipeline.init_seed` (the training seed plus an offset), so a training seed equal to the
ticket's does not rebuild the ticket's weights.

    python bench/ticket.py                  # several minutes in a one-thread lane
    python bench/ticket.py --tiny           # seconds, on digits (used by the tests)
    python bench/ticket.py --render_only    # the table again from bench/RESULTS_ticket.json
"""

import os

from absl import app, flags

import common
from tfdfc import artifacts
from tfdfc.compression import ticket

# 150 iterations, for the bench's time budget (the control has not converged there: see the
# "Lottery ticket" sections of bench/NOTES.md).
_FLAGS = common.define_flags("ticket", steps=150)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds; each trains the ticket "
                           "and its re-initialised control.")
_TICKET_SEED = flags.DEFINE_integer("ticket_seed", 100, "Seed of the ticket's original "
                                    "initialisation.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Pruning rounds of the ticket search (tiny: 1).")
_ROUND_STEPS = flags.DEFINE_integer("round_steps", 1000, "SGD steps per round (tiny: 5).")
_RENDER_ONLY = flags.DEFINE_bool("render_only", False, "Rewrite the Markdown from the JSON "
                                 "beside it (an earlier run's), training nothing.")


def find_ticket(tiny, out_dir, seed):
    """Finds the ticket with data (the teacher's architecture and data); returns (path, config,
    the search's log lines)."""
    lines = []

    def log(line):
        print(line)
        lines.append(line)

    # The architectures and data sets of common.ensure_teacher's teachers.
    config = ticket.TicketConfig(
        data="digits" if tiny else "mnist5k", architecture="lenet5-x0.5" if tiny else "lenet5",
        rounds=1 if tiny else _ROUNDS.value, round_steps=5 if tiny else _ROUND_STEPS.value,
        batch_size=32 if tiny else 128, seed=seed, output=os.path.join(out_dir, "ticket.npz"))
    return ticket.find(config, log=log), config, lines


def main(argv):
    del argv
    json_path = os.path.splitext(_FLAGS.results.value)[0] + ".json"
    if _RENDER_ONLY.value:
        results = artifacts.read_json(json_path)
        if results is None:
            raise app.UsageError(f"--render_only: no results in {json_path}")
        common.write_results(_FLAGS.results.value, render(results), results)
        return
    tiny, out_dir, steps = _FLAGS.tiny.value, _FLAGS.out_dir.value, _FLAGS.steps.value
    seeds = [int(seed) for seed in _SEEDS.value]
    teacher_path = common.ensure_teacher(tiny, out_dir)
    ticket_path, ticket_config, find_log = find_ticket(tiny, out_dir, _TICKET_SEED.value)
    meta, _, _ = ticket.load(ticket_path)
    runs = {}
    for seed in seeds:
        for kind, reinit in (("ticket", False), ("reinit", True)):
            runs[f"{kind}_seed{seed}"] = common.run(
                f"{kind}_seed{seed}", teacher_path, tiny, out_dir, steps, seed=seed,
                ticket=ticket_path, ticket_reinit=reinit, with_data_baseline=False)
    first = runs[f"ticket_seed{seeds[0]}"]
    results = {"command": common.command_line("ticket", tiny, first["train"]["steps"]),
               "seeds": seeds,
               "ticket": {"path": ticket_path, "meta": meta, "log": find_log,
                          "config": {field: getattr(ticket_config, field) for field in
                                     ("architecture", "data", "rounds", "round_steps",
                                      "prune_fraction", "seed")}},
               "runs": runs}
    common.write_results(_FLAGS.results.value, render(results), results)


def render(results):
    """The Markdown of the results JSON: the per-seed table, then the verdict."""
    seeds, runs, search = results["seeds"], results["runs"], results["ticket"]["config"]
    accuracy = {key: r["student"]["accuracy"] for key, r in runs.items()}
    tickets = [accuracy[f"ticket_seed{s}"] for s in seeds]
    reinits = [accuracy[f"reinit_seed{s}"] for s in seeds]
    differences = [common.points(t, r) for t, r in zip(tickets, reinits)]
    first = runs[f"ticket_seed{seeds[0]}"]
    lines = ["# Lottery ticket vs random re-initialisation, trained data-free", "",
             f"Command: `{results['command']}`. Ticket found once with data: "
             f"{search['architecture']} on {search['data']}, {search['rounds']} round(s) x "
             f"{search['round_steps']} SGD steps, {search['prune_fraction']:g} of the "
             f"remaining weights pruned per round, seed {search['seed']}. Each training seed "
             f"then trains the ticket (mask + original init) and the control (same mask, fresh "
             "random init drawn from the training seed apart from the ticket's: "
             f"pipeline.init_seed) data-free for {first['train']['steps']} iterations of 1 "
             f"generator + {first['train']['student_steps']} student steps, the mask held "
             "fixed. Accuracies on the held-out test split (Keras student).", "",
             "| seed | ticket | re-init | ticket - re-init (pt) | ticket train s | "
             "re-init train s |", "|---|---|---|---|---|---|"]
    for seed, t, r, d in zip(seeds, tickets, reinits, differences):
        cells = [str(seed), f"{t:.4f}", f"{r:.4f}", f"{d:+.2f}",
                 f"{runs[f'ticket_seed{seed}']['train']['seconds']:.0f}",
                 f"{runs[f'reinit_seed{seed}']['train']['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    mean_difference, difference_sd = common.mean_sd(differences)
    difference_std = "n/a" if difference_sd is None else f"{difference_sd:.2f}"
    lines.append(f"| mean ± std | {common.mean_std(tickets)} | {common.mean_std(reinits)} | "
                 f"{mean_difference:+.2f} ± {difference_std} | | |")
    student, meta = first["student"], results["ticket"]["meta"]
    lines += ["", f"Teacher accuracy: {first['teacher']['accuracy']:.4f}. "
              f"Ticket keeps {meta['kept_fraction']:.4f} of the prunable weights (every conv and "
              f"dense kernel but the output layer's); the student has "
              f"{student['nonzero_params']:,} nonzero of {student['params']:,} parameters "
              f"(sparsity {student['sparsity']:.3f}). Std is the sample standard deviation over "
              "seeds.", "", "Ticket search (with data):", ""]
    lines += [f"- {line}" for line in results["ticket"]["log"]]
    verdicts = common.Verdicts()
    # Noise: NOISE_SE standard errors of the mean paired difference, from the seeds' spread.
    noise = (None if difference_sd is None
             else common.NOISE_SE * difference_sd / len(differences) ** 0.5)
    verdicts.beats(f"ticket minus re-init, {common.seeds_label(len(seeds))} (pt)", mean_difference,
                   noise)
    return lines + ["", "Targets (the paper: +1.1 to +1.6 points; the ticket must beat its "
                    "control by more than the noise):", ""] + verdicts.lines


if __name__ == "__main__":
    app.run(main)
