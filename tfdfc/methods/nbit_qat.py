"""n-bit quantization-aware training (`--quantize=w<b>a<c>`, e.g. w4a8, w4a4): b-bit weights and
c-bit activations, from the teacher's weights. TFLite packs 4-bit weights; activations below 8
bits run at int8 there (qat.py)."""

from tfdfc import export, fold, metrics
from tfdfc.compression import compress, mixed, quantize
from tfdfc.methods import baseline_noise, qat

_BATCH = 32
# Below this share of int8's kernel bytes saved, a w<b>a8 file is no smaller than int8's.
_LITTLE_SAVING = 0.1


def teacher_copy(teacher):
    """The teacher as an n-bit or mixed student of it starts: a plain copy, its batch norms
    folded into their convolutions (fold.py)."""
    return fold.fold_batch_norms(export.plain_copy(teacher))


class NBit(qat.QuantizationAware):
    name = "nbit"
    folds_batch_norms = True  # the n-bit configs wrap layers one by one (fold.py)
    splits_kernels = True  # a quantizer per kernel: kernel_split.py

    def selects(self, config):
        return (config.quant_spec.scheme == "nbit" and config.prune == "none"
                and not config.ticket)

    def recipe_for(self, config):
        """Activations below 8 bits take a recipe of their own (recipes.py): rounding them
        moves the student far further from the teacher than rounding weights does."""
        return "qat_low_activations" if config.quant_spec.act_bits < 8 else self.recipe

    def prepare(self, config, teacher, log=print):
        warning = sub_byte_activation_warning(config)
        if warning:
            log(warning)
        return None

    def no_training(self, config, run, eval_set):
        """The QAT-wrapped teacher with activation ranges set by forward passes on noise."""
        spec = config.quant_spec
        model = quantize.quantize_nbit(teacher_copy(run.teacher_logits), spec.weight_bits,
                                       spec.act_bits, range_start=spec.range_start)
        return noise_calibrated_accuracy(model, config, run, eval_set)

    def file_fields(self, config, run, files, log=print):
        if config.quant_spec.weight_bits > 4 or "int8" not in files:
            return {}
        return {"int8": {"kernels_left_int8": unpacked_kernels(files["int8"], run.float_template,
                                                               config.quantize, log)}}

    def has_untrained(self, config):
        return config.student == "same"

    def files_run_other_activations(self, config):
        """TFLite has no kernels for activations below 8 bits: the files run 8 (qat.py)."""
        return config.quant_spec.act_bits < 8

    def untrained(self, config, run, samples):
        """The teacher wrapped as the trained student is (its SavedModel at the run's bits), its
        file from a copy at the activation bits TFLite runs (qat.deployable_spec)."""
        spec = config.quant_spec
        model = compress(teacher_copy(run.teacher_logits), spec).model
        deployable = None
        if self.files_run_other_activations(config):
            def deployable(calibrated_model):
                copy = compress(teacher_copy(run.teacher_logits), qat.deployable_spec(spec)).model
                copy.set_weights(calibrated_model.get_weights())
                return copy
        return untrained_files(model, run, config, samples,
                               f"QAT-wrapped teacher at {config.quantize}", deployable)


def sub_byte_activation_warning(config):
    """The one-line warning of a scheme with activations below 8 bits, or None. TFLite has no
    kernels for them, so its file runs 8-bit activations on ranges trained for fewer bits:
    weights trained against the coarser activations lose accuracy there, and a student trained
    at 8-bit activations makes a file of the same size (INT4 weights either way) that scored
    higher on the validation split (bench/NOTES.md)."""
    spec = config.quant_spec
    if spec.act_bits >= 8:
        return None
    return (f"WARNING: --quantize={config.quantize}: TFLite has no {spec.act_bits}-bit "
            f"activation kernels, so student_int8.tflite runs 8-bit activations on ranges "
            f"trained for {spec.act_bits}; for a .tflite file, --quantize=w{spec.weight_bits}a8 "
            "trains a file of the same size that keeps more accuracy (the SavedModel keeps the "
            f"{spec.act_bits}-bit activations)")


def unpacked_kernels(payload, template, scheme, log=print):
    """The layers of `template` (the student's float architecture) whose low-bit kernels the
    TFLite file `payload` stores as INT8 (16 or fewer levels in a whole byte each) rather than
    packed INT4. The converter packs a kernel only where its op's input and output both carry
    fixed ranges, which the first layer's input (the float image, calibrated by the converter)
    does not; the logits layer's output range is fixed at export (export.tflite_int8). One
    warning line names them and says what the packed kernels still save against int8's; where
    that is little (the INT8 kernels hold nearly all the weights, as a wide first layer does),
    it says the int8 file is about as small: the converter stores an INT8-kept dense kernel with
    a scale per output where int8's has one, which can outweigh the saving."""
    bits = mixed.file_bits(payload, template)
    left = [name for name, value in bits.items() if value == 8]
    if left:
        sizes = {name: size for name, size in mixed.kernel_sizes(template).items()
                 if name in bits}
        int8_bytes, file_bytes = mixed.int8_bytes(sizes), mixed.weight_bytes(sizes, bits)
        saving = 1 - file_bytes / max(1, int8_bytes)
        share = sum(sizes[name] for name in left) / max(1, int8_bytes)
        advice = ("; --quantize=int8 makes a file about as small, or smaller where a dense "
                  "layer stays INT8 (the converter gives it a scale per output, int8 one "
                  "scale)" if saving < _LITTLE_SAVING else "")
        log(f"WARNING: --quantize={scheme}: TFLite keeps {len(left)} of {len(bits)} kernels as "
            f"INT8, {share:.0%} of the kernel weights, with no size saving there "
            f"({', '.join(left)}): the converter packs a 4-bit kernel only where its op's input "
            f"and output both have trained ranges (the first layer's input, the float image, "
            f"has none); the kernels take "
            f"{file_bytes:,} bytes against int8's {int8_bytes:,} ({saving:.0%} less){advice}")
    return left


def calibrated(model, images):
    """`model`, a QAT model of the teacher, with its activation ranges moved by forward passes on
    `images` (from TF-MOT's initial +-6, or set by them: --activation_ranges), every other
    weight kept."""
    kept = {w.name: w.numpy() for w in model.weights if not quantize.is_activation_range(w)}
    for start in range(0, len(images), _BATCH):
        model(images[start:start + _BATCH], training=True)  # moves the activation ranges...
    for weight in model.weights:
        if weight.name in kept:
            weight.assign(kept[weight.name])  # ...so restore batch-norm statistics and steps
    return model


def noise_calibrated_accuracy(model, config, run, eval_set):
    """{"accuracy", "method"} of a QAT `model` of the teacher, untrained, calibrated on
    Gaussian noise."""
    noise = baseline_noise.images(eval_set.input_shape, config.train.seed, run.input_space)
    model = calibrated(model, noise)
    batches = f"{len(noise) // _BATCH} Gaussian-noise batches"
    ranges = (f"the running mean of {batches}" if config.quant_spec.range_start == "from_batches"
              else f"the initial +-6 after {batches}")
    return {"accuracy": metrics.keras_accuracy(model, eval_set.x_test, eval_set.y_test),
            "method": f"QAT-wrapped teacher, no weight update; activation ranges from {ranges}"}


def untrained_files(model, run, config, samples, what, deployable=None):
    """For the fallback guard: (the untrained QAT `model` calibrated on the generated `samples`,
    {"int8": its full-integer TFLite file, "float": its float view's, as the trained run
    exports}, description). `deployable(model)`, where given, is the calibrated model as TFLite
    kernels run it (activations at 8 bits, where `model`'s are fewer): the int8 file's source."""
    model = calibrated(model, samples)
    files = {"int8": export.tflite_int8(deployable(model) if deployable else model, samples,
                                        config.int8_io),
             **export.float_file(export.float_view(run.float_template, model))}
    return model, files, (
        f"{what}, no weight update; activation ranges from forward passes on generated images")
