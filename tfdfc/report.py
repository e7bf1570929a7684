"""Exports of a trained run and the measurements of `report.json`.

Which files each scheme produces is its method's (tfdfc/methods/); this module writes them,
measures them, and assembles the report.
"""

import os

import numpy as np

from tfdfc import batchnorm, data, export, figures, guard, metrics, recipes
from tfdfc.compression import prune
from tfdfc.keras_compat import tf

REPRESENTATIVE_SAMPLES = 256
parameter_count = metrics.parameter_count


def keras_accuracy(model, eval_set):
    """Accuracy of a Keras model on the evaluation split."""
    return metrics.keras_accuracy(model, eval_set.x_test, eval_set.y_test)


def image_view(eval_set):
    """Maps standardised images back to [0, 1] for the TensorBoard grid."""
    def show(images):
        images = np.asarray(images)
        if eval_set is not None and eval_set.name in data.BUNDLED:
            return images * eval_set.std + eval_set.mean
        return figures.each_to_unit_range(images)
    return show


def generated_images(generator, count, latent_dim, seed):
    """`count` samples of the trained generator (batch-norm in training mode, as in training)."""
    return np.concatenate(list(generated_batches(generator, count, latent_dim, seed)))


def generated_batches(generator, count, latent_dim, seed, batch_size=256):
    """`generated_images`' samples, `batch_size` at a time (all of them need not fit in memory):
    the generator runs on 64 latents at a time either way, so both give the same images."""
    z = tf.random.stateless_normal([count, latent_dim], seed=[seed, 2**31 - 1])
    for first in range(0, count, batch_size):
        yield np.concatenate([np.asarray(generator(z[start:start + 64], training=True))
                              for start in range(first, min(first + batch_size, count), 64)])


def export_and_measure(config, run, eval_set, log=print):
    """Writes the SavedModel and TFLite files of a trained run; returns the report (no train)
    and the Keras model the SavedModel holds."""
    spec = config.quant_spec
    samples = generated_images(run.players.generator, REPRESENTATIVE_SAMPLES,
                               config.train.latent_dim, config.train.seed)
    # After training, each step below can take minutes on a deep network: a line before each.
    log("exporting: converting the trained student to TFLite")
    saved, view, files = run.method.files(config, run, samples)
    judge = (guard.judge_images(run, config, generated_images) if guard.applies(config, run)
             else None)
    saved, files, guard_entry = guard.check(config, run, samples, judge, saved, files, log,
                                             eval_set)
    classes = generated_classes(saved, run.teacher_logits, samples)
    if classes["student"] == 1 < classes["teacher"]:
        log(_one_class_line(config, classes, len(samples)))
    export.save_saved_model(saved, os.path.join(config.out_dir, "saved_model"))
    for variant, payload in files.items():
        export.write_tflite(payload, os.path.join(config.out_dir, f"student_{variant}.tflite"))
    log("exported SavedModel and " + ", ".join(
        f"student_{variant}.tflite ({len(payload):,} bytes)" for variant, payload in files.items()))
    result = {
        "teacher": {"path": config.teacher, "params": parameter_count(run.teacher_logits),
                    "kernel_params": metrics.kernel_parameter_count(run.teacher_logits),
                    "accuracy": None, "input_space": run.input_space.as_dict()},
        "student": dict(_student_summary(config, run, view), generated_classes=classes),
        "tflite": {variant: {"bytes": len(payload), "gzip_bytes": metrics.gzip_size(payload),
                             "accuracy": None} for variant, payload in files.items()},
        "eval_data": config.eval_data or None,
        "guard": guard_entry,
        "recipe": {"name": config.recipe or None, "settings": recipes.settings_of(config)},
    }
    if spec.is_qat:
        # TFLite kernels have no activations below 8 bits: those run at int8 with the learned
        # ranges (the Keras SavedModel keeps the simulated c-bit activations).
        result["tflite"]["int8"]["act_bits"] = max(spec.act_bits, 8)
        result["tflite"]["int8"]["weight_bits"] = result["student"]["weight_bits"]
    if "int8" in files:  # what the conv and dense kernels take in the file (INT4 packed)
        result["tflite"]["int8"]["kernel_bytes"] = metrics.tflite_kernel_bytes(files["int8"])
    for variant, payload in files.items():
        result["tflite"][variant]["delegate"] = _delegate(variant, payload, samples[:8], log)
    for variant, fields in run.method.file_fields(config, run, files, log).items():
        result["tflite"][variant].update(fields)
    if eval_set is not None:
        measured = (saved if guard.saved_model_fell_back(guard_entry)
                    else run.method.measured(run, view))
        log(f"measuring the teacher, the student and each file on {eval_set.name}")
        _measure(result, run, measured, files, eval_set, log)
    return result, saved


def generated_classes(student, teacher_logits, samples):
    """How many classes the exported Keras `student` and the teacher each give over the
    generated `samples`: a student with one class where the teacher has several answers the
    same whatever its input (a slimming threshold that cut all but a channel or two, a
    collapse), which no accuracy shows in a run without evaluation data."""
    return {name: int(np.unique(np.argmax(metrics.keras_logits(model, samples), -1)).size)
            for name, model in (("student", student), ("teacher", teacher_logits))}


def _one_class_line(config, classes, count):
    fix = ("a lower --slim_threshold keeps more channels" if config.prune == "slim"
           else "see the run's losses in TensorBoard")
    return (f"WARNING: the exported SavedModel gives one class for all {count} generated images, "
            f"where the teacher gives {classes['teacher']}: it answers the same whatever its "
            f"input ({fix})")


def _unfolded(config, run):
    """The student's network before any batch norm was folded into a convolution: n-bit and
    mixed QAT fold those of a teacher-initialised student (whose statistics the policy froze),
    which then has the teacher's architecture."""
    return run.teacher_logits if config.resolved_student_init == "teacher" else run.float_template


def counted_network(config, run, network):
    """The network whose parameters and MACs are reported for a student `network` (the
    method's, or a model of it): itself, or where n-bit or mixed QAT folded the student's batch
    norms into its convolutions, the network before folding, as the teacher is counted. Folding
    is a step of quantizing (int8 QAT folds inside its wrappers, unseen here); counted after it,
    an n-bit student would seem to lose its batch norms and gain a bias per channel."""
    unfolded = _unfolded(config, run)
    if len(batchnorm.batch_norms(run.float_template)) < len(batchnorm.batch_norms(unfolded)):
        return unfolded
    return network


def _student_summary(config, run, view):
    spec = config.quant_spec
    method_network = run.method.architecture(run, view)
    architecture = counted_network(config, run, method_network)
    folded = architecture is not method_network
    if view is not None and not folded:
        nonzero, sparsity = metrics.nonzero_parameter_count(view), metrics.sparsity(view)
    else:  # no float view (TF-MOT renamed a layer), or one of the folded network: kernel zeros
        zeros, entries = metrics.trained_kernel_zeros(run.players.student_model)
        sparsity = zeros / max(entries, 1)
        nonzero = parameter_count(architecture) - zeros
    summary = {"architecture": config.student if config.student != "same"
               else f"same ({run.teacher_logits.name})",
               "method": run.method.name, "quantize": config.quantize, "prune": config.prune,
               "ticket": config.ticket or None, "ticket_reinit": config.ticket_reinit,
               "init": config.resolved_student_init,
               "batch_norm": (config.resolved_batch_norm
                              if batchnorm.batch_norms(_unfolded(config, run)) else None),
               "accuracy": None, "params": parameter_count(architecture),
               "kernel_params": metrics.kernel_parameter_count(architecture),
               "nonzero_params": nonzero,
               "macs": metrics.multiply_accumulates(architecture),
               "weight_bits": spec.weight_bits, "act_bits": spec.act_bits,
               "sparsity": sparsity}
    summary.update(run.method.report_fields(config, run))
    return summary


def _delegate(variant, payload, images, log):
    """What runs the file (as tfdfc.evaluate reports it): XNNPACK, TFLite's default delegate, or
    where XNNPACK refuses the file or computes it wrongly, the builtin kernels. XNNPACK refuses
    sparse quantized kernels by design (a pruned run's file is sparse-encoded only where that
    made it smaller); anything else it refuses, a runtime that applies it by default may refuse
    too, and a file it runs wrongly gives wrong answers there: the user hears of both."""
    _, delegate, reason = metrics.tflite_outputs_any_kernels(payload, images)
    if delegate == metrics.BUILTIN_KERNELS_XNNPACK_WRONG:
        log(f"WARNING: XNNPACK runs student_{variant}.tflite wrongly ({reason}); measured on "
            "TFLite's builtin kernels. Run it without XNNPACK (e.g. the interpreter's "
            "BUILTIN_WITHOUT_DEFAULT_DELEGATES)")
    elif reason and not (metrics.is_sparse_encoded(payload) and variant != "float"):
        log(f"WARNING: XNNPACK refused student_{variant}.tflite ({reason}); it runs on "
            "TFLite's builtin kernels. Runtimes that apply XNNPACK by default may refuse it too")
    return delegate


def _measure(result, run, keras_model, files, eval_set, log):
    images, labels = eval_set.x_test, eval_set.y_test
    student_logits = metrics.keras_logits(keras_model, images)
    result["teacher"]["accuracy"] = metrics.keras_accuracy(run.teacher_logits, images, labels)
    result["student"]["accuracy"] = metrics.accuracy(student_logits, labels)
    for variant, payload in files.items():
        tflite_logits = metrics.tflite_outputs(  # on what `_delegate` found runs the file
            payload, images,
            use_default_delegates=result["tflite"][variant]["delegate"] == metrics.XNNPACK)
        result["tflite"][variant]["accuracy"] = metrics.accuracy(tflite_logits, labels)
        result["tflite"][variant]["max_abs_diff_vs_keras"] = float(
            np.max(np.abs(student_logits - tflite_logits)))
    fallback = guard.saved_model_fell_back(result.get("guard") or {})
    log(f"accuracy on {eval_set.name} ({len(labels)} images): teacher "
        f"{result['teacher']['accuracy']:.4f}, student (Keras"
        f"{', the guard exported the untrained one' if fallback else ''}) "
        f"{result['student']['accuracy']:.4f}, " + ", ".join(
            f"TFLite {variant} {entry['accuracy']:.4f}"
            for variant, entry in result["tflite"].items()))


def train_summary(config, loop, strategy):
    """The `train` section of the report."""
    return {"steps": config.train.steps, "seconds": round(loop.seconds, 1),
            "seconds_this_session": round(loop.session_seconds, 1),
            "student_steps": config.train.student_steps, "batch_size": config.train.batch_size,
            "resample_latents": config.train.resample_latents,
            "replicas": strategy.num_replicas_in_sync, "final_metrics": loop.last_metrics,
            "evaluations": loop.evaluation_curve,
            "generator_collapse": loop.collapse.summary()}


def _percent(value):
    return "—" if value is None else f"{100 * value:.2f} %"


def _guard_sentences(verdict, untrained):
    """What the fallback guard decided, for report.md: which exports are the untrained ones
    (`untrained` names them) and, for each judgement that fell back, the agreement with the
    teacher behind it (and real-image accuracy, never used for it)."""
    apart = "saved_model" in verdict  # the SavedModel judged apart from the files
    judgements = []
    if guard.fell_back(verdict):
        judgements.append(("the TFLite files" if apart else "every export", verdict))
    if apart and guard.fell_back(verdict["saved_model"]):
        judgements.append(("the SavedModel", verdict["saved_model"]))
    sentences = []
    for which, judged in judgements:
        text = (f"**The fallback guard exported the untrained student** ({untrained}) as "
                f"{which}: on {judged['images']:,} generated images it agrees with the teacher "
                f"{judged['untrained_agreement']:.1%}, the trained student "
                f"{judged['trained_agreement']:.1%}.")
        real = judged.get("eval_accuracy")
        if real:
            text += (f" On the evaluation data (not used for the choice) the trained one scores "
                     f"{_percent(real['trained'])}, the untrained {_percent(real['untrained'])}.")
        sentences += ["", text]
    return sentences


def _accuracy_rows(result):
    """report.md's accuracy table: the teacher, the exported student (SavedModel and each
    file, naming the untrained export where the guard fell back) and the baselines."""
    verdict = result.get("guard") or {}
    untrained = verdict.get("untrained", "the untrained student")
    keras_how = (f"{untrained}, which the fallback guard exported"
                 if guard.saved_model_fell_back(verdict) else "this run")
    rows = ["| model | accuracy | how |", "|---|---|---|",
            f"| teacher | {_percent(result['teacher']['accuracy'])} | trained with data (given) |",
            f"| student, SavedModel (Keras) | {_percent(result['student']['accuracy'])} | "
            f"{keras_how} |"]
    files_how = f" ({untrained}, which the guard exported)" if guard.fell_back(verdict) else ""
    rows += [f"| student, TFLite {variant} | {_percent(entry['accuracy'])} | "
             f"`student_{variant}.tflite` in ai-edge-litert{files_how} |"
             for variant, entry in result["tflite"].items()]
    for name, entry in (result.get("baselines") or {}).items():
        if entry:
            size = (f" ({entry['weight_bytes']:,} weight bytes)" if "weight_bytes" in entry
                    else "")
            rows.append(f"| baseline: {name.replace('_', ' ')} | {_percent(entry['accuracy'])} "
                        f"| {entry['method']}{size} |")
    return rows + _guard_sentences(verdict, untrained)


def to_markdown(result):
    """A human-readable report.md of a report.json dictionary."""
    teacher, student, train = result["teacher"], result["student"], result.get("train", {})
    lines = [f"# tfdfc run: {student['architecture']} student, quantize={student['quantize']}, "
             f"prune={student['prune']}", "",
             f"Teacher `{teacher['path']}`; evaluation data: {result.get('eval_data') or 'none'}.",
             f"{train.get('steps', '?')} iterations (1 generator + "
             f"{train.get('student_steps', '?')} student steps, batch "
             f"{train.get('batch_size', '?')}) in {train.get('seconds', '?')} s on "
             f"{train.get('replicas', '?')} replica(s)."]
    recipe = (result.get("recipe") or {}).get("name")
    if recipe:
        lines.append(f"Settings left unset took the `{recipe}` recipe (tfdfc/recipes.py; "
                     "report.json `recipe` holds the settings trained with).")
    lines.append("")
    collapse = train.get("generator_collapse")
    if collapse:
        lines += [f"**Warning: the generator collapsed at iteration {collapse['iteration']}** "
                  f"(for {collapse['patience']} iterations the teacher saw fewer than "
                  f"{collapse['threshold']:g} effective classes in the generated images; "
                  f"collapses at {', '.join(map(str, collapse['iterations']))}, "
                  f"{collapse['resets']} generator reset(s)).", ""]
    lines += _accuracy_rows(result)
    lines += ["", "| size | teacher | student |", "|---|---|---|",
              f"| parameters | {teacher['params']:,} | {student['params']:,} |",
              f"| conv + dense weights | {teacher.get('kernel_params', 0):,} | "
              f"{student.get('kernel_params', 0):,} |",
              f"| nonzero parameters | | {student['nonzero_params']:,} |",
              f"| MACs per image | | {student['macs']:,} |",
              f"| weight / activation bits | 32 / 32 | {student['weight_bits']} / "
              f"{student['act_bits']} |", "",
              "| file | bytes | gzip bytes |", "|---|---|---|"]
    lines += [f"| student_{variant}.tflite | {entry['bytes']:,} | {entry['gzip_bytes']:,} |"
              for variant, entry in result["tflite"].items()]
    if "slim" in student:
        kept = ", ".join(f"{group} {count}/{total}"
                         for group, (count, total) in student["slim"]["channels"].items())
        lines += ["", f"Channels kept at threshold {student['slim']['threshold']:g}: {kept}."]
    if "delta" in student:
        lines += ["", f"Binary scale delta = {student['delta']:.4g}."]
    if student.get("layer_sparsity"):
        rates = student["layer_sparsity"]
        lines += ["", f"Sparsity of the {len(rates)} pruned layers: {prune.rate_range(rates)}; "
                      f"each in report.json's `student.layer_sparsity`."]
    pictures = result.get("figures") or {}
    if pictures.get("size_accuracy"):
        lines += ["", f"![accuracy against file size]({pictures['size_accuracy']})"]
    if pictures.get("generated"):
        lines += ["", "Images of the trained generator (each scaled to its own range):", "",
                  f"![generated images]({pictures['generated']})"]
    return "\n".join(lines) + "\n"
