"""The fallback guard: never ship a trained student that is worse than no training at all.

Data-free training can hurt: a generator that collapses onto a few images teaches the student
the wrong things, and before this guard such a run exited 0 in silence. After training, the
exported student and the same scheme applied to the teacher without any training are judged,
without data, by how often they agree with the teacher on fresh generated images (latents the
run never drew). The untrained one is exported in the trained one's place only when it agrees
more by over BIAS_MARGIN plus the noise (two standard errors of the per-image difference: both
models see the same images); then the run says so in one warning line. report.json records
both agreements, their difference, the noise, the margin and the choice, and, when the run has
evaluation data, both files' accuracy on it (never used for the choice).

Why a margin, and what the guard cannot see: the judge's images come from the trained
generator, which is biased both ways. It spent the run looking for the trained student's
mistakes (against the trained student), and the trained student spent the run learning its
images, where the untrained model only took its activation ranges from them (for it). On the
zoo's runs the gap on generated images went either way by up to a few points while real-image
accuracy differed by about one, and damaged students (a collapsed MobileNetV2 int8) trailed by
several (bench/NOTES.md, "Fallback guard" and "The `qat` student rate"). So the guard catches
damage, not differences of a point: a trained student one point worse than no training on real
images can pass it. Two limits, measured on real validation images (bench/RESULTS_judge.md):
the teacher is every data-free judge's only reference, and an untrained twin can score higher
than a trained student that agrees more with the teacher (its quantization noise corrects some
of the teacher's mistakes), which no data-free judge can see; and a generator trained against
the teacher alone (balance, confidence, batch-norm prior) is no fairer a judge than the run's
own, since the trained student learns generated images of any such generator.

Where the untrained version is already as good as training can make it, the burden flips: the
method says so (`untrained_by_default`), and the trained student is exported only when it agrees
more than the untrained one by over the noise. int8 of a teacher with BatchNorm is the case:
post-training int8 of a folded, calibrated BatchNorm network is within a fraction of a point of
the teacher, so data-free QAT has nothing to win there and the generated images' distance from
real ones to lose (bench/NOTES.md, "int8 twin-default rule").

Where the files run other activation bits than the SavedModel (below 8 bits, which TFLite
runs at 8), the two are judged apart: training can lift the c-bit model but not its file.
That judgement is the weaker one: the trained c-bit model learns the generated images it is
then judged on, and has been kept where its twin was far better on real images
(bench/RESULTS_judge.md).

It applies where the untrained version is the same artefact: int8 (post-training int8 of the
teacher, calibrated on the generated images), n-bit and mixed QAT (the QAT-wrapped teacher at
the run's bits, its activation ranges moved by forward passes on the generated images) and
binary (delta * sign of the teacher's kernels); not to pruning or new architectures.
"""

import math

import numpy as np

from tfdfc import metrics

JUDGE_SAMPLES = 2048  # 2 SE of a paired 1-pt difference of two ~95 % models: about 0.6 pt
BIAS_MARGIN = 0.02  # agreement the untrained model must gain beyond noise (see above)
_JUDGE_SEED_OFFSET = 7919  # fresh latents: the representative samples use the run's seed


def applies(config, run):
    """Whether the guard has an untrained counterpart for this run (its method says)."""
    return run.method.has_untrained(config)


def _tflite_outputs(payload, images):  # report.py says where XNNPACK refuses a file
    return metrics.tflite_outputs_any_kernels(payload, images)[0]


def _predictions(payload, images):
    return np.argmax(_tflite_outputs(payload, images), axis=-1)


def compare(trained_labels, untrained_labels, teacher_labels, untrained_by_default=False):
    """The report entry of a comparison: each model's agreement with the teacher on the same
    images, the paired difference (untrained - trained) and its noise, and which to export: the
    untrained one when the difference exceeds noise + BIAS_MARGIN; with `untrained_by_default`,
    the untrained one unless the trained one agrees more by over the noise."""
    trained = np.asarray(trained_labels) == teacher_labels
    untrained = np.asarray(untrained_labels) == teacher_labels
    per_image = untrained.astype(np.float64) - trained
    difference = float(per_image.mean())
    noise = 2 * float(per_image.std()) / math.sqrt(len(per_image))
    if untrained_by_default:
        margin, untrained_wins = 0.0, -difference <= noise
    else:
        margin, untrained_wins = BIAS_MARGIN, difference > noise + BIAS_MARGIN
    return {"checked": True, "images": len(per_image),
            "trained_agreement": float(trained.mean()),
            "untrained_agreement": float(untrained.mean()),
            "difference": difference, "noise": noise, "margin": margin,
            "default": "untrained" if untrained_by_default else "trained",
            "exported": "untrained" if untrained_wins else "trained"}


def fell_back(entry):
    """Whether the guard's report `entry` says the untrained student's files were exported."""
    return entry.get("exported") == "untrained"


def saved_model_fell_back(entry):
    """Whether the guard's report `entry` says the untrained SavedModel was exported: judged
    apart from the files where they run other activation bits ("saved_model"), else with them."""
    return fell_back(entry.get("saved_model", entry))


def check(config, run, samples, judge_images, saved, files, log=print, eval_set=None):
    """Judges the trained exports against the untrained ones; returns (saved model, files,
    report entry): on a fallback (entry "exported": "untrained") every export is the untrained
    one's and the saved model is the untrained Keras model, which the report then measures.

    Where the files run other activation bits than the SavedModel (activations below 8 bits,
    which TFLite runs at 8), the two are different models and are judged apart: the SavedModel
    by its own agreement (entry "saved_model"), so that training which helps the c-bit model
    but not its 8-bit file keeps the trained SavedModel, and the reverse.

    With `eval_set`, the entry also holds both files' accuracy on it ("eval_accuracy"), and
    both SavedModels' where judged apart, for the report only: the choice never sees real data,
    but a user (and the benchmarks) can then tell what a fallback saved or cost, which the
    exported file alone hides."""
    if not applies(config, run):
        return saved, files, {"checked": False}
    log(f"fallback guard: the untrained student, converted too, and the trained one judged on "
        f"{len(judge_images):,} fresh generated images")
    teacher_labels = _keras_predictions(run.teacher_logits, judge_images)
    model, untrained_files, method = run.method.untrained(config, run, samples)
    variant = next(iter(untrained_files))
    by_default = run.method.untrained_by_default(config, run)
    entry = dict(compare(_predictions(files[variant], judge_images),
                         _predictions(untrained_files[variant], judge_images), teacher_labels,
                         by_default),
                 untrained=method)
    if eval_set is not None:
        entry["eval_accuracy"] = {"file": variant, **{
            which: metrics.accuracy(_tflite_outputs(payload[variant], eval_set.x_test),
                                    eval_set.y_test)
            for which, payload in (("trained", files), ("untrained", untrained_files))}}
    if run.method.files_run_other_activations(config):
        entry["saved_model"] = compare(_keras_predictions(saved, judge_images),
                                       _keras_predictions(model, judge_images), teacher_labels,
                                       by_default)
        if eval_set is not None:
            entry["saved_model"]["eval_accuracy"] = {
                which: metrics.keras_accuracy(keras_model, eval_set.x_test, eval_set.y_test)
                for which, keras_model in (("trained", saved), ("untrained", model))}
    if fell_back(entry):
        log(_fallback_line(entry, method))
    if saved_model_fell_back(entry) != fell_back(entry):
        log(_apart_line(entry))
    return (model if saved_model_fell_back(entry) else saved,
            dict(untrained_files) if fell_back(entry) else files, entry)


def _keras_predictions(model, images):
    return np.argmax(metrics.keras_logits(model, images), axis=-1)


def _apart_line(entry):
    """The line of a SavedModel chosen apart from the files (activations below 8 bits)."""
    saved = entry["saved_model"]
    which = "untrained" if fell_back(saved) else "trained"
    return (f"exporting the {which} SavedModel, judged apart from the files (they run its "
            f"activations at 8 bits): the trained one agrees with the teacher on "
            f"{saved['trained_agreement']:.3f} of fresh generated images, the untrained one on "
            f"{saved['untrained_agreement']:.3f} (see report.json 'guard')")


def _fallback_line(entry, method):
    """The one line a fallback logs: a note where the untrained model is the default, else a
    warning that training did damage."""
    trained, untrained = entry["trained_agreement"], entry["untrained_agreement"]
    if entry["default"] == "untrained":
        return (f"exporting the {method}: the trained student agrees with the teacher on "
                f"{trained:.3f} of fresh generated images, the untrained one on "
                f"{untrained:.3f}, and for this scheme and teacher training must agree "
                "measurably more to be exported (see report.json 'guard')")
    return (f"WARNING: the trained student agrees with the teacher on {trained:.3f} of fresh "
            f"generated images, the untrained {method} on {untrained:.3f}: exporting the "
            "untrained one (see report.json 'guard'); try a lower --student_lr or more --steps")


def judge_images(run, config, generated):
    """Fresh generated images for the judge (`generated` is report.generated_images)."""
    return generated(run.players.generator, JUDGE_SAMPLES, config.train.latent_dim,
                     config.train.seed + _JUDGE_SEED_OFFSET)
