"""The fallback guard: never ship a trained student that is worse than no training at all.

Data-free training can hurt: a generator that collapses onto a few images teaches the student
the wrong things, and before this guard such a run exited 0 in silence. After training, the
exported student and the same scheme applied to the teacher without any training are judged,
without data, by how often they agree with the teacher on fresh generated images (latents the
run never drew). If the untrained one agrees more, by more than two standard errors of the
difference, the run says so in one warning line, exports the untrained one in the trained
one's place, and report.json records both agreements and the choice.

The judge's images come from the trained generator, which looked for the trained student's
mistakes, so the comparison leans towards the untrained model: the guard errs on the side of
the model with fewer surprises. It applies where the untrained version is the same artefact:
int8 (post-training int8 of the teacher, calibrated on the generated images) and binary
(delta * sign of the teacher's kernels); not to n-bit QAT, pruning or new architectures.
"""

import math

import numpy as np

from tfdfc import export, metrics
from tfdfc.compression import binary

JUDGE_SAMPLES = 512
_JUDGE_SEED_OFFSET = 7919  # fresh latents: the representative samples use the run's seed


def _untrained(config, run, samples):
    """(what to export instead, {variant: TFLite bytes}, description), or None."""
    spec = config.quant_spec
    teacher = export.plain_copy(run.teacher_logits)
    if spec.scheme == "int8":
        payload = export.tflite_int8(teacher, samples, config.int8_io)
        return None, {"int8": payload}, "post-training int8 of the teacher (generated images)"
    if spec.scheme == "binary":
        model = binary.sign_only(teacher, run.compressed.delta)
        return model, {"float": export.tflite_float(model),
                       "dynamic": export.tflite_dynamic(model)}, "delta * sign(teacher kernels)"
    return None


def applies(config):
    """Whether the guard has an untrained counterpart for this run."""
    return (config.quant_spec.scheme in ("int8", "binary") and config.prune == "none"
            and not config.ticket and config.student == "same")


def _agreement(payload, images, teacher_labels):
    outputs = metrics.tflite_outputs(payload, images)
    return float(np.mean(np.argmax(outputs, axis=-1) == teacher_labels))


def check(config, run, samples, judge_images, saved, files, log=print):
    """Judges the trained exports against the untrained ones; returns (saved model, files,
    report entry), the untrained ones substituted when they agree more with the teacher."""
    if not applies(config):
        return saved, files, {"checked": False}
    teacher_labels = np.argmax(metrics.keras_logits(run.teacher_logits, judge_images), axis=-1)
    model, untrained_files, method = _untrained(config, run, samples)
    variant = next(iter(untrained_files))
    trained = _agreement(files[variant], judge_images, teacher_labels)
    untrained = _agreement(untrained_files[variant], judge_images, teacher_labels)
    noise = 2 * math.sqrt((trained * (1 - trained) + untrained * (1 - untrained))
                          / len(judge_images))
    entry = {"checked": True, "images": len(judge_images), "untrained": method,
             "trained_agreement": trained, "untrained_agreement": untrained,
             "exported": "trained"}
    if untrained - trained > noise:
        log(f"WARNING: the trained student agrees with the teacher on {trained:.3f} of fresh "
            f"generated images, the untrained {method} on {untrained:.3f}: exporting the "
            "untrained one (see report.json 'guard'); try a lower --student_lr or more --steps")
        files = {**files, **untrained_files}
        saved = model if model is not None else saved
        entry["exported"] = "untrained"
    return saved, files, entry


def judge_images(run, config, generated):
    """Fresh generated images for the judge (`generated` is report.generated_images)."""
    return generated(run.players.generator, JUDGE_SAMPLES, config.train.latent_dim,
                     config.train.seed + _JUDGE_SEED_OFFSET)
