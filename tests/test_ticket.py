"""Lottery tickets: found with data by iterative magnitude pruning, trained data-free with the
mask fixed, and the same-mask random re-initialisation control."""

import numpy as np
import pytest

from conftest import quiet
from tfdfc import distribute, pipeline, teacher
from tfdfc.compression import ticket
from tfdfc.errors import ConfigError
from tfdfc.keras_compat import keras
from tfdfc.loop import Loop
from tfdfc.train import TrainConfig


@pytest.fixture(scope="module")
def ticket_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ticket") / "ticket.npz")
    ticket.find(ticket.TicketConfig(data="digits", architecture="lenet5-x0.5", rounds=2,
                                    round_steps=20, batch_size=32, output=path), log=quiet)
    return path


def test_each_round_removes_a_fifth_of_the_remaining_weights_per_layer(ticket_path):
    meta, masks, initial = ticket.load(ticket_path)
    assert meta["architecture"] == "lenet5-x0.5"
    assert set(masks) == {"conv_0", "conv_1", "dense_0", "dense_1"}  # not the output layer
    for name, mask in masks.items():
        assert set(np.unique(mask).tolist()) <= {0.0, 1.0}
        assert mask.mean() == pytest.approx(0.8 ** 2, abs=0.03), name
    assert meta["kept_fraction"] == pytest.approx(0.64, abs=0.02)
    assert len(initial) > 0


def _run(tmp_path, teacher_path, ticket_path, reinit):
    strategy = distribute.make_strategy("one_device")
    config = pipeline.CompressConfig(
        teacher=teacher_path, out_dir=str(tmp_path), ticket=ticket_path, ticket_reinit=reinit,
        generator_channels=8, train=TrainConfig(steps=2, batch_size=16, student_steps=3,
                                                log_every=1))
    with strategy.scope():
        model = teacher.load(teacher_path)
    run = pipeline.seeded_build(strategy, config, model, log=quiet)  # seed 0, as the ticket's
    start = {layer.name: layer.kernel.numpy().copy()
             for layer in ticket.prunable_layers(run.players.student_model)}
    Loop(strategy, run.players, config.train, str(tmp_path / "ckpt"), log=quiet).run()
    return run.players.student_model, start


@pytest.mark.slow
def test_mask_stays_fixed_and_the_ticket_starts_from_its_original_init(
        tmp_path, digits_teacher_path, ticket_path):
    _, masks, initial = ticket.load(ticket_path)
    student, start = _run(tmp_path / "ticket", digits_teacher_path, ticket_path, reinit=False)
    control, control_start = _run(tmp_path / "control", digits_teacher_path, ticket_path,
                                  reinit=True)
    first_kernel = initial[0]  # conv_0's kernel in the original initialisation
    np.testing.assert_array_equal(start["conv_0"], first_kernel * masks["conv_0"])
    # The ticket was found at seed 0 and the control trains at seed 0: its draw must still
    # differ from the ticket's original init, or there is no control at all.
    assert not np.allclose(control_start["conv_0"], start["conv_0"])
    for model in (student, control):
        for layer in ticket.prunable_layers(model):
            kernel, mask = layer.kernel.numpy(), masks[layer.name]
            assert np.all(kernel[mask == 0] == 0), layer.name
            assert np.count_nonzero(kernel[mask == 1]) == int(mask.sum()), layer.name
    assert not np.array_equal(student.get_layer("dense_0").kernel.numpy(), start["dense_0"])


def test_bad_ticket_files_and_flags_are_clear_errors(tmp_path, ticket_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"nope")
    with pytest.raises(ticket.TicketError, match="not a ticket file .*: not a readable .npz$"):
        ticket.load(str(junk))  # not numpy's advice on pickles
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ticket.TicketError, match="without a ticket's metadata"):
        ticket.load(str(tmp_path / "other.npz"))
    with pytest.raises(ticket.TicketError, match="not found: write one with"):
        ticket.load(str(tmp_path / "missing.npz"))
    with pytest.raises(ConfigError, match="needs --ticket"):
        pipeline.CompressConfig(teacher="t", out_dir="o", ticket_reinit=True).validate()
    with pytest.raises(ConfigError, match="cannot be combined"):
        pipeline.CompressConfig(teacher="t", out_dir="o", ticket=ticket_path,
                                quantize="int8").validate()
    for init in ("teacher", "random"):  # the ticket sets the init (--ticket_reinit: fresh)
        with pytest.raises(ConfigError, match="cannot be combined with --student, "
                                              "--student_init"):
            pipeline.CompressConfig(teacher="t", out_dir="o", ticket=ticket_path,
                                    student_init=init).validate()
    with pytest.raises(ConfigError, match="prune_fraction"):
        ticket.TicketConfig(prune_fraction=1.0).validate()


def test_ticket_for_other_inputs_is_refused(tmp_path):
    from tfdfc import models  # pylint: disable=import-outside-toplevel
    other = str(tmp_path / "mnist_ticket.npz")
    model = models.build("lenet5-x0.5", (28, 28, 1), 10)
    masks = {layer.name: np.ones(layer.kernel.shape, np.float32)
             for layer in ticket.prunable_layers(model)}

    class Shape:  # the two fields `save` reads from a data set
        input_shape, num_classes = (28, 28, 1), 10

    ticket.save(other, "lenet5-x0.5", Shape, masks, model.get_weights())
    digits_model = models.build("lenet5-x0.5", (8, 8, 1), 10)
    with pytest.raises(ticket.TicketError, match=r"found for inputs \(28, 28, 1\)"):
        ticket.build_student(other, digits_model, reinit=False)


def test_reinit_differs_from_the_original_init_even_with_the_tickets_seed(ticket_path,
                                                                        digits_teacher_path):
    _, masks, initial = ticket.load(ticket_path)
    model = teacher.load(digits_teacher_path)
    config = pipeline.CompressConfig(teacher="t", out_dir="o", ticket=ticket_path,
                                     ticket_reinit=True,
                                     train=TrainConfig(seed=ticket.TicketConfig().seed))
    keras.utils.set_random_seed(pipeline.init_seed(config))  # as pipeline.seeded_build seeds
    fresh, _ = ticket.build_student(ticket_path, model, reinit=True)
    kernel = fresh.get_layer("conv_0").kernel.numpy()
    original = initial[0] * masks["conv_0"]
    assert kernel.shape == original.shape and not np.allclose(kernel, original)
    assert np.all(kernel[masks["conv_0"] == 0] == 0)


def test_report_names_the_tickets_architecture_and_init(ticket_path):
    """A ticket run's student is the ticket's network, from its original init (the control:
    a fresh one), whatever the teacher's architecture is called."""
    for reinit, init in ((False, "ticket"), (True, "random")):
        config = pipeline.CompressConfig(teacher="t.keras", out_dir="o", ticket=ticket_path,
                                         ticket_reinit=reinit)
        assert config.method.report_fields(config, None) == {"architecture": "lenet5-x0.5",
                                                             "init": init}
