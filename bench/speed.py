"""Speed benchmark on mnist5k (LeNet-5 teacher and student, batch 128), all in one process:

- one alternating iteration (1 generator step + 10 student steps on the same z), timed through
  the training loop's own `Loop.run_iteration`, against one plain Keras `train_on_batch` step of
  the same student on a real batch of the same size. The two are interleaved (each round: one
  iteration, then 10 fit steps) and the ratio is the median of the rounds' ratios, so a change of
  machine load during the run moves both sides alike; and one iteration with
  `--resample_latents` (a fresh z per student step);
- the same ratio at the generator widths of `--more_ratio_widths` (the presets' 32; 4 in tiny);
- iterations per second under MirroredStrategy with 1 and with 2 replicas (two logical CPUs);
- TFLite latency (one image, ai-edge-litert, median) of the float and the full-integer int8 file.

    python bench/speed.py                  # a few minutes on 2 cores
    python bench/speed.py --tiny           # seconds, on digits (used by the tests)
"""

import contextlib
import statistics
import tempfile
import time

from absl import app, flags

import common
from tfdfc import distribute

distribute.split_cpu(2)  # before TensorFlow runs any op: 2 logical CPUs for 2 replicas

# pylint: disable=wrong-import-position
from tfdfc import data, export, metrics, pipeline, report  # noqa: E402
from tfdfc import teacher as teacher_lib  # noqa: E402
from tfdfc.keras_compat import keras  # noqa: E402
from tfdfc.loop import Loop  # noqa: E402
from tfdfc.train import TrainConfig  # noqa: E402

_FLAGS = common.define_flags("speed", steps=30)
_REPEATS = flags.DEFINE_integer("latency_runs", 300, "TFLite invocations per latency figure.")
_MORE_WIDTHS = flags.DEFINE_list("more_ratio_widths", ["32"], "Generator widths whose iteration "
                                 "/ fit-step ratio is measured too, beside --generator_channels "
                                 "(32: the mnist presets' width; --tiny measures 4).")
flags.register_validator("more_ratio_widths",
                         lambda widths: all(w.isdigit() and int(w) >= 2 for w in widths),
                         "--more_ratio_widths must be integers >= 2")
TARGET_RATIO = 13.0


def _ratio_widths(tiny, measured):
    """The widths of --more_ratio_widths not yet `measured` (4 in tiny runs)."""
    return [4] if tiny else sorted({int(w) for w in _MORE_WIDTHS.value} - {measured})


def _config(teacher_path, tiny, strategy, resample_latents=False, width=None):
    train = TrainConfig(steps=1000, batch_size=16 if tiny else 128,
                        student_steps=2 if tiny else 10, resample_latents=resample_latents)
    if width is None:
        width = 8 if tiny else _FLAGS.generator_channels.value
    return pipeline.CompressConfig(teacher=teacher_path, out_dir="unused", strategy=strategy,
                                   generator_channels=width, train=train)


@contextlib.contextmanager
def timing_loop(strategy, config, teacher_model):
    """Yields (run, Loop) of a fresh data-free run whose checkpoints go to a temporary dir."""
    run = pipeline.build(strategy, config, teacher_model, log=lambda _: None)
    with tempfile.TemporaryDirectory() as checkpoint_dir:
        yield run, Loop(strategy, run.players, config.train, checkpoint_dir, log=lambda _: None)


def timed(call, *args):
    """Seconds one call takes (every call timed here returns host values, so it has finished)."""
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def iteration_seconds(strategy, config, teacher_model, iterations):
    """Median seconds of one `Loop.run_iteration`, after two warm-up iterations."""
    with timing_loop(strategy, config, teacher_model) as (_, loop):
        timings = [timed(loop.run_iteration, i) for i in range(iterations + 2)]
    return statistics.median(timings[2:])


def compiled_copy(student):
    """A plain Keras copy of `student`, compiled for `train_on_batch` on labels."""
    model = export.plain_copy(student)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def paired_seconds(strategy, config, teacher_model, eval_set, rounds):
    """Iteration against plain fit step, interleaved so that both see the same machine load.

    Each round times one `Loop.run_iteration`, then `student_steps` plain `train_on_batch` steps
    of a copy of the student on a real batch of the same size; the first two rounds warm up.
    Returns medians over rounds: (iteration s, fit step s, per-round iteration / fit step)."""
    batch = config.train.batch_size
    images, labels = eval_set.x_train[:batch], eval_set.y_train[:batch]
    iterations, fit_steps, ratios = [], [], []
    with timing_loop(strategy, config, teacher_model) as (run, loop):
        fit_model = compiled_copy(run.players.student_model)
        for round_index in range(rounds + 2):
            iteration = timed(loop.run_iteration, round_index)
            fit_step = statistics.median(timed(fit_model.train_on_batch, images, labels)
                                         for _ in range(config.train.student_steps))
            if round_index >= 2:
                iterations.append(iteration)
                fit_steps.append(fit_step)
                ratios.append(iteration / fit_step)
        return (statistics.median(iterations), statistics.median(fit_steps),
                statistics.median(ratios), run)


def tflite_latency(payload, image, runs):
    """Median seconds of one single-image invocation."""
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    interpreter = Interpreter(model_content=payload)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    tensor = metrics._to_tensor(image[None], detail)  # pylint: disable=protected-access
    timings = []
    for _ in range(runs + 10):
        started = time.perf_counter()
        interpreter.set_tensor(detail["index"], tensor)
        interpreter.invoke()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings[10:])


def main(argv):
    del argv
    tiny, iterations = _FLAGS.tiny.value, 3 if _FLAGS.tiny.value else _FLAGS.steps.value
    teacher_path = common.ensure_teacher(tiny, _FLAGS.out_dir.value)
    eval_set = data.load("digits" if tiny else "mnist5k")
    one = distribute.make_strategy("one_device")
    with one.scope():
        teacher_model = teacher_lib.load(teacher_path)
    config = _config(teacher_path, tiny, "one_device")
    per_iteration, per_fit_step, ratio, run = paired_seconds(one, config, teacher_model,
                                                             eval_set, iterations)
    more_widths = {  # width -> (iteration s, fit step s, ratio)
        width: paired_seconds(one, _config(teacher_path, tiny, "one_device", width=width),
                              teacher_model, eval_set, iterations)[:3]
        for width in _ratio_widths(tiny, config.generator_channels)}
    resampled = _config(teacher_path, tiny, "one_device", resample_latents=True)
    per_resampled_iteration = iteration_seconds(one, resampled, teacher_model, iterations)
    mirrored = {}
    for replicas in (1, 2):
        strategy = distribute.make_strategy("mirrored", [f"/cpu:{i}" for i in range(replicas)])
        with strategy.scope():
            model = teacher_lib.load(teacher_path)
        mirrored[replicas] = iteration_seconds(strategy, _config(teacher_path, tiny, "mirrored"),
                                               model, iterations)
    teacher_logits = teacher_lib.as_logits(teacher_model)
    samples = report.generated_images(run.players.generator, 64, config.train.latent_dim, 0)
    latency = {"float": tflite_latency(export.tflite_float(teacher_logits), eval_set.x_test[0],
                                       _REPEATS.value),
               "int8": tflite_latency(export.tflite_int8(export.plain_copy(teacher_logits),
                                                         samples), eval_set.x_test[0],
                                      _REPEATS.value)}
    student_steps = config.train.student_steps
    lines = ["# Speed", "",
             f"Command: `python bench/speed.py{' --tiny' if tiny else ''}`, one process, medians "
             f"over {iterations} iterations after 2 warm-up ones (the iteration and the plain step "
             f"interleaved: each round one iteration, then {student_steps} plain steps); LeNet-5 "
             "teacher and student, "
             f"batch {config.train.batch_size}, generator width {config.generator_channels}.", "",
             "| measure | value |", "|---|---|",
             f"| one alternating iteration (1 generator + {student_steps} student steps), "
             f"OneDevice | {1000 * per_iteration:.1f} ms |",
             f"| the same with a fresh z per student step (`--resample_latents`) | "
             f"{1000 * per_resampled_iteration:.1f} ms "
             f"({per_resampled_iteration / per_iteration:.2f}x) |",
             f"| one plain Keras `train_on_batch` step, same student and batch | "
             f"{1000 * per_fit_step:.1f} ms |",
             f"| ratio (median of the rounds' ratios) | {ratio:.2f} (pure work: "
             f"{student_steps + 1} passes plus the teacher) |",
             *[f"| generator width {width}: iteration, plain step, ratio (measured the same "
               f"way) | {1000 * seconds:.1f} ms, {1000 * fit_seconds:.1f} ms, {width_ratio:.2f} |"
               for width, (seconds, fit_seconds, width_ratio) in more_widths.items()],
             f"| MirroredStrategy, 1 replica | {1 / mirrored[1]:.2f} iterations/s |",
             f"| MirroredStrategy, 2 replicas (2 logical CPUs on the same 2 cores) | "
             f"{1 / mirrored[2]:.2f} iterations/s |",
             f"| TFLite latency, float, 1 image | {1e6 * latency['float']:.0f} µs |",
             f"| TFLite latency, int8, 1 image | {1e6 * latency['int8']:.0f} µs |"]
    verdicts = common.Verdicts()
    verdicts.check("alternating iteration / plain fit step", ratio, TARGET_RATIO, False)
    for width, (_, _, width_ratio) in more_widths.items():
        verdicts.check(f"the same at generator width {width}", width_ratio, TARGET_RATIO, False)
    lines += ["", "Targets:", ""] + verdicts.lines
    common.write_results(_FLAGS.results.value, lines, {
        "iteration_seconds": per_iteration,
        "resampled_iteration_seconds": per_resampled_iteration,
        "fit_step_seconds": per_fit_step, "ratio": ratio,
        "more_widths": {str(width): dict(zip(("iteration_seconds", "fit_step_seconds", "ratio"),
                                             values)) for width, values in more_widths.items()},
        "mirrored_iteration_seconds": {str(k): v for k, v in mirrored.items()},
        "tflite_latency_seconds": latency})


if __name__ == "__main__":
    app.run(main)
