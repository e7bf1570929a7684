"""Data-free mixed precision (`--quantize=mixed`): 4 or 8 weight bits per convolution and dense
layer under `--mixed_budget`, activations at 8 bits, then trained data-free from the teacher's
weights like any QAT student.

Before the student is built (`prepare`), the run converts an all-4-bit copy once to learn which
kernels TFLite packs as INT4 (the only layers where 4 bits save bytes), measures each such
layer's sensitivity on images of a generator trained against the teacher (sensitivity.py), and
solves the budget (compression/mixed.py). `--mixed_assignment=random` draws the bits at random
under the same budget instead, other than the search's where another assignment fits: the
control the sensitivity has to beat. The plan is saved in the
run directory, so a resumed run trains the same student.
"""

from tfdfc import export, input_space, sensitivity
from tfdfc.compression import CompressedStudent, mixed, quantize
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.methods import base, baseline_noise, nbit_qat, qat


class MixedPrecision(qat.QuantizationAware):
    name = "mixed"
    folds_batch_norms = True  # as n-bit: its configs wrap layers one by one (fold.py)
    splits_kernels = True  # a quantizer per kernel: kernel_split.py

    def selects(self, config):
        return config.quantize == "mixed" and config.prune == "none" and not config.ticket

    def validate(self, config):
        if config.student != "same" or config.resolved_student_init != "teacher":
            raise ConfigError("--quantize=mixed picks bits for the teacher's own layers: it "
                              "needs --student=same and the teacher's weights (--student_init "
                              "unset or teacher)")

    def prepare(self, config, teacher, log=print):
        keras.utils.set_random_seed(config.train.seed)
        sizes = mixed.kernel_sizes(teacher)
        space = input_space.for_teacher(config.input_range, teacher)
        packed = packed_layers(teacher, sizes, config.train.seed, space)
        if not packed:
            raise ConfigError(
                "--quantize=mixed: TFLite packs none of this model's kernels at 4 bits (it "
                "keeps the first layer's INT8, as it reads the float image), so no budget "
                "below int8 can be met; use --quantize=int8")
        limit = mixed.budget_bytes(config.mixed_budget, sizes)
        mixed.check_budget(limit, sizes, packed)  # before the search, which takes minutes
        if limit >= mixed.int8_bytes(sizes):
            raise ConfigError(
                f"--mixed_budget={config.mixed_budget:g} allows {limit:,} bytes, which hold the "
                f"whole int8 model ({mixed.int8_bytes(sizes):,}): every kernel would keep 8 "
                "bits; use --quantize=int8, or a budget below 1 (a fraction of int8) or below "
                "that many bytes")
        plan = {"budget": config.mixed_budget, "budget_bytes": limit,
                "int8_bytes": mixed.int8_bytes(sizes),
                "fullest_bytes": mixed.fullest_bytes(sizes, packed, limit),
                "assignment": config.mixed_assignment, "packed": sorted(packed)}
        scores, base_kl = sensitivity.measure(teacher, sizes, packed, config, space, log)
        bits = mixed.solve(sizes, packed, scores, limit)
        plan.update(sensitivity=scores, all_8bit_kl=base_kl)
        if config.mixed_assignment == "random":  # the search ran only to be avoided
            chosen, bits = bits, mixed.random_bits(sizes, packed, limit, config.train.seed,
                                                   avoid=bits)
            plan.update(same_as_sensitivity=bits == chosen)
            warning = random_control_warning(sizes, limit, bits, chosen)
            if warning:
                log(warning)
        plan.update(bits=bits, weight_bytes=mixed.weight_bytes(sizes, bits))
        log(f"mixed precision: {sum(b == 4 for b in bits.values())} of {len(bits)} kernel layers "
            f"at 4 bits, {plan['weight_bytes']:,} weight bytes (budget {limit:,}, int8 "
            f"{plan['int8_bytes']:,})")
        return plan

    def build(self, config, teacher, delta=None, plan=None):
        if plan is None:
            raise ConfigError("--quantize=mixed builds its student from a plan (prepare)")
        student = base.float_student(config, teacher, self.folds_batch_norms)
        model = mixed.quantize_mixed(student, plan["bits"], config.quant_spec.range_start)
        return student, CompressedStudent(model, quantize.make_range_sync(model), plan=plan)

    def deployable(self, config, run):
        return qat.with_trained_weights(mixed.quantize_mixed(
            export.plain_copy(run.float_template), run.compressed.plan["bits"],
            config.quant_spec.range_start), run)

    def report_fields(self, config, run):
        plan = run.compressed.plan
        return {"weight_bits": "4 or 8 per layer", "mixed": {
            key: plan[key] for key in ("budget", "budget_bytes", "fullest_bytes", "int8_bytes",
                                       "weight_bytes", "assignment", "bits", "packed",
                                       "sensitivity", "same_as_sensitivity") if key in plan}}

    def no_training(self, config, run, eval_set):
        return _untrained(config, run, eval_set, mixed.kernel_sizes(run.teacher_logits),
                          run.compressed.plan["bits"], "this assignment")

    def has_untrained(self, config):
        return True  # validate: the teacher's own layers, from its weights

    def untrained(self, config, run, samples):
        model = mixed.quantize_mixed(nbit_qat.teacher_copy(run.teacher_logits),
                                     run.compressed.plan["bits"], config.quant_spec.range_start)
        return nbit_qat.untrained_files(model, run, config, samples,
                                        "QAT-wrapped teacher at this assignment")

    def more_baselines(self, config, run, eval_set):
        """Uniform int8 and w4a8 (every packed kernel at 4 bits) and a random assignment under
        the same budget, each without training, with their weight bytes."""
        plan = run.compressed.plan
        sizes = mixed.kernel_sizes(run.teacher_logits)
        packed = set(plan["packed"])
        assignments = {
            "no_training_uniform_int8": (dict.fromkeys(sizes, 8), "uniform 8-bit weights"),
            "no_training_uniform_w4a8": (mixed.all_bits(sizes, packed, 4),
                                         "every packed kernel at 4 bits"),
            "no_training_random": (mixed.random_bits(sizes, packed, plan["budget_bytes"],
                                                     config.train.seed + 1, avoid=plan["bits"]),
                                   "a random assignment under the same budget")}
        return {name: _untrained(config, run, eval_set, sizes, bits, what)
                for name, (bits, what) in assignments.items()}


def random_control_warning(sizes, limit, control, search):
    """One warning line where the random control does not compare with the search's assignment
    at the same size: it is the same assignment, or it left the band of the budget that the
    search's holds (no draw other than the search's landed there), or None."""
    if control == search:
        return ("WARNING: --mixed_assignment=random: no assignment under the budget other than "
                "the sensitivity search's was drawn, so this control is the same student")
    held, searched = mixed.weight_bytes(sizes, control), mixed.weight_bytes(sizes, search)
    if held < mixed.fill_floor(limit) <= searched:
        return (f"WARNING: --mixed_assignment=random: no draw other than the search's held "
                f"within {mixed.FILL_TOLERANCE:.0%} of the budget, so this control holds {held:,} "
                f"weight bytes against the search's {searched:,}: it compares at a smaller size")
    return None


def _untrained(config, run, eval_set, sizes, bits, what):
    """The no-training baseline of assignment `bits` ({layer: 4 or 8}) with its bytes."""
    model = mixed.quantize_mixed(nbit_qat.teacher_copy(run.teacher_logits), bits,
                                 config.quant_spec.range_start)
    result = nbit_qat.noise_calibrated_accuracy(model, config, run, eval_set)
    result.update(method=f"{what}; {result['method']}",
                  weight_bytes=mixed.weight_bytes(sizes, bits),
                  layers_at_4_bits=sum(value == 4 for value in bits.values()))
    return result


def packed_layers(teacher, sizes, seed, space):
    """The kernel layers of `teacher` whose 4-bit weights the TFLite converter packs as INT4:
    read from one conversion of an all-4-bit QAT copy calibrated on noise."""
    probe = mixed.quantize_mixed(nbit_qat.teacher_copy(teacher), dict.fromkeys(sizes, 4))
    noise = baseline_noise.images(tuple(teacher.inputs[0].shape[1:]), seed, space)
    payload = export.tflite_int8(probe, noise[:32])
    return {name for name, bits in mixed.file_bits(payload, teacher).items() if bits == 4}

