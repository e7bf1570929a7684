"""Can a data-free judge tell which of a trained student and its untrained twin is better?

The fallback guard (tfdfc/guard.py) judges the two by their agreement with the teacher on fresh
images of the run's generator. This study restores finished runs (no training: a copy of each
resumes at its last checkpoint), exports both the trained files and the twin's again, and
measures them on three sets of images:

- `run_generator`: the guard's images (the run's generator on latents it never drew);
- `teacher_generator`: a generator trained against the teacher alone for JUDGE_STEPS steps on
  class balance, confidence and, where the teacher has batch norms, their statistics: images
  neither model trained on, as close to the teacher's data as a data-free prior gets;
- `val`: the real validation split, where the truth is measured: accuracy, and agreement with
  the teacher (what a data-free judge can at best estimate).

For each run and set: the twin's agreement with the teacher minus the trained student's, over
all images and over the quarter the teacher is most confident of; on `val` also both
accuracies, and both accuracies on the images the teacher gets right and wrong. Each run's
figures merge by run directory into --output (JSON) and --markdown is rendered from it.

    python bench/judge_check.py --runs=exported/bench/zoo/runs/test/mobilenet/w4a8_200it_seed2
"""

import dataclasses
import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from tfdfc import (artifacts, data, guard, metrics, pipeline, priors, report,  # noqa: E402
                   run_dir, teacher_generator)
from tfdfc.train import TrainConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", [], "Finished run directories (each with config.json, checkpoints).")
flags.DEFINE_string("work_dir", "exported/bench/judge_check", "Where the copies resume.")
flags.DEFINE_string("output", "bench/RESULTS_judge.json", "JSON the runs' figures merge into.")
flags.DEFINE_string("markdown", "bench/RESULTS_judge.md", "Table rendered from --output.")
flags.DEFINE_bool("render_only", False, "Rewrite --markdown from --output; run nothing.")
flags.DEFINE_bool("tiny", False, "Train the teacher-only generator for TINY_STEPS (the test's).")

JUDGE_STEPS = 200
TINY_STEPS = 4
CONFIDENT_SHARE = 0.25  # the share of images the teacher is most confident of
# The teacher-only generator's latents and weights: a stream of their own, apart from the run's.
_TEACHER_GENERATOR_SEED_OFFSET = 7919
SETS = ("run_generator", "teacher_generator", "val")

# A bench's npz of the test split has a _val twin; a bundled set takes tfdfc's @val suffix.
_NPZ_TEST, _NPZ_VAL = "_test.npz", "_val.npz"


def validation_spec(spec):
    """The validation-split twin of a run's evaluation data `spec`."""
    if spec.endswith(_NPZ_TEST):
        return spec[:-len(_NPZ_TEST)] + _NPZ_VAL
    return spec if spec.endswith(data.VAL_SUFFIX) else spec + data.VAL_SUFFIX


def copied_config(source, destination):
    """The run's settings, resuming in `destination`, on the validation split, no baseline."""
    saved = artifacts.read_json(os.path.join(source, run_dir.CONFIG))
    train = TrainConfig(**_known_settings(TrainConfig, saved.pop("train"), source))
    config = pipeline.CompressConfig(**_known_settings(pipeline.CompressConfig, saved, source),
                                     train=train)
    return dataclasses.replace(config,
                               out_dir=destination, with_data_baseline=False,
                               eval_data=validation_spec(saved["eval_data"]))


def _known_settings(config_class, fields, source):
    """config.json's `fields` as `config_class` takes them (tuples where JSON has lists).
    A field the class no longer has (renamed or removed since the run) ends the study in one
    line: restoring the run without it would not be the run that was trained."""
    unknown = sorted(set(fields) - {field.name for field in dataclasses.fields(config_class)})
    if unknown:
        raise app.UsageError(f"{os.path.join(source, run_dir.CONFIG)}: settings this version "
                             f"does not have: {', '.join(unknown)}; restore the run with the "
                             f"version that trained it")
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in fields.items()}


def restored(source, work_dir):
    """(config, the run restored at its last checkpoint, validation set) of `source`."""
    destination = os.path.join(work_dir, source.rstrip(os.sep).replace(os.sep, "__"))
    if not os.path.isdir(destination):
        run_dir.copy_trained_state(source, destination)
    config = copied_config(source, destination)
    strategy, teacher, eval_set, _ = pipeline.load_inputs(config)
    built = pipeline.seeded_build(strategy, config, teacher, log=lambda _: None)
    trained, _ = pipeline.train_one(config, strategy, teacher, eval_set, destination,
                                    log=lambda _: None, built=built)
    return config, trained, eval_set


def teacher_generator_images(run, config, steps):
    """guard.JUDGE_SAMPLES images of a generator trained `steps` against the teacher alone."""
    teacher = run.teacher_logits
    prior = priors.make_batch_norm_prior(teacher)

    def loss(images):
        logits = teacher(images, training=False)
        value = priors.class_balance(logits) + priors.confidence(logits)
        return value if prior is None else value + prior(images)

    rng = np.random.default_rng(config.train.seed + _TEACHER_GENERATOR_SEED_OFFSET)
    generator = teacher_generator.train(teacher, loss, config, run.input_space, steps,
                                        rng, "judge study: teacher generator")
    return teacher_generator.draw(generator, guard.JUDGE_SAMPLES, config.train.latent_dim, rng)


def agreement_gaps(teacher_logits, trained, untrained):
    """The twin's agreement with the teacher minus the trained model's, in points: over all
    images and over the CONFIDENT_SHARE the teacher is most confident of."""
    labels = np.argmax(teacher_logits, axis=-1)
    shifted = np.exp(teacher_logits - np.max(teacher_logits, axis=-1, keepdims=True))
    confidence = np.max(shifted / np.sum(shifted, axis=-1, keepdims=True), axis=-1)
    confident = np.argsort(confidence, kind="stable")[-round(CONFIDENT_SHARE * len(labels)):]
    agree = {which: np.argmax(outputs, axis=-1) == labels
             for which, outputs in (("trained", trained), ("untrained", untrained))}

    def gap(chosen):
        return 100 * float(agree["untrained"][chosen].mean() - agree["trained"][chosen].mean())

    return {"all": gap(slice(None)), "confident": gap(confident),
            "trained_agreement": float(agree["trained"].mean())}


def accuracies(teacher_logits, outputs, labels):
    """Accuracy, and accuracy on the images the teacher gets right and wrong."""
    predicted = np.argmax(outputs, axis=-1)
    right = np.argmax(teacher_logits, axis=-1) == labels
    return {"all": float(np.mean(predicted == labels)),
            "teacher_right": float(np.mean(predicted[right] == labels[right])),
            "teacher_wrong": float(np.mean(predicted[~right] == labels[~right]))}


def study_run(source, work_dir, steps=JUDGE_STEPS):
    """{model: figures} of one run: "files" (the first file variant the guard judges) and,
    where they run other activation bits, "saved_model"."""
    config, run, eval_set = restored(source, work_dir)
    samples = report.generated_images(run.players.generator, report.REPRESENTATIVE_SAMPLES,
                                      config.train.latent_dim, config.train.seed)
    saved, _, files = run.method.files(config, run, samples)
    twin, twin_files, _ = run.method.untrained(config, run, samples)
    variant = next(iter(twin_files))
    images = {"run_generator": guard.judge_images(run, config, report.generated_images),
              "teacher_generator": teacher_generator_images(run, config, steps),
              "val": eval_set.x_test}
    models = {"files": (lambda x: metrics.tflite_outputs_any_kernels(files[variant], x)[0],
                        lambda x: metrics.tflite_outputs_any_kernels(twin_files[variant], x)[0])}
    if run.method.files_run_other_activations(config):
        models["saved_model"] = (lambda x: metrics.keras_logits(saved, x),
                                 lambda x: metrics.keras_logits(twin, x))
    figures = {}
    for model, (trained, untrained) in models.items():
        entry = {}
        for name, x in images.items():
            teacher_logits = metrics.keras_logits(run.teacher_logits, x)
            outputs = trained(x), untrained(x)
            entry[name] = agreement_gaps(teacher_logits, *outputs)
            if name == "val":
                entry["accuracy"] = {which: accuracies(teacher_logits, out, eval_set.y_test)
                                     for which, out in zip(("trained", "untrained"), outputs)}
        figures[model] = entry
    return figures


def render(results):
    """The Markdown table of every run in `results`."""
    lines = ["# Can a data-free judge see which of a trained student and its twin is better?",
             "", "Made by `python bench/judge_check.py --runs=<run dirs>` (module docstring: "
             "what each column is). All accuracies on the **validation** split. Gaps are the "
             "untrained twin's minus the trained student's, in points: > 0 favours the twin.",
             "", "| run | model | val accuracy: trained / twin (gap) | twin − trained on teacher-"
             "wrong images | agreement gap: val | run generator (confident quarter) | "
             "teacher generator (confident quarter) |", "|---|---|---|---|---|---|---|"]
    for source, figures in sorted(results.items()):
        for model, entry in figures.items():
            trained, twin = entry["accuracy"]["trained"], entry["accuracy"]["untrained"]
            lines.append(
                f"| {source.split('runs/')[-1]} | {model} | {trained['all']:.4f} / "
                f"{twin['all']:.4f} ({100 * (twin['all'] - trained['all']):+.2f}) | "
                f"{100 * (twin['teacher_wrong'] - trained['teacher_wrong']):+.1f} | "
                f"{entry['val']['all']:+.2f} | {entry['run_generator']['all']:+.2f} "
                f"({entry['run_generator']['confident']:+.2f}) | "
                f"{entry['teacher_generator']['all']:+.2f} "
                f"({entry['teacher_generator']['confident']:+.2f}) |")
    return "\n".join(lines) + "\n"


def main(_):
    for source in [] if FLAGS.render_only else FLAGS.runs:
        figures = study_run(source, FLAGS.work_dir, TINY_STEPS if FLAGS.tiny else JUDGE_STEPS)
        results = artifacts.read_json(FLAGS.output) or {}
        results[source] = figures
        artifacts.write_json(FLAGS.output, results)
        print(f"{source}: " + json.dumps(figures), flush=True)
    artifacts.write_text(FLAGS.markdown, render(artifacts.read_json(FLAGS.output) or {}))


if __name__ == "__main__":
    app.run(main)
