"""A lottery ticket (`--ticket=<find_ticket .npz>`): the ticket's architecture, its fixed mask
and its original initialisation (or a fresh one, `--ticket_reinit`, the control), trained
data-free from scratch with the mask re-applied after every update."""

from tfdfc import export
from tfdfc.compression import CompressedStudent, ticket
from tfdfc.methods import base


class LotteryTicket(base.Method):
    name = "ticket"
    recipe = "distill"
    sparse = True

    def selects(self, config):
        return bool(config.ticket)

    def build(self, config, teacher, delta=None, plan=None):
        student, masks = ticket.build_student(config.ticket, teacher, config.ticket_reinit)
        return student, CompressedStudent(student, ticket.make_mask_hook(student, masks))

    def report_fields(self, config, run):
        """The ticket's architecture (the `--student` flag says nothing here) and its init: the
        ticket's original weights, or a fresh draw for the `--ticket_reinit` control."""
        meta, _, _ = ticket.load(config.ticket)
        return {"architecture": meta["architecture"],
                "init": "random" if config.ticket_reinit else "ticket"}

    def files(self, config, run, samples):
        return base.float_files(config, export.plain_copy(run.players.student_model), samples,
                                sparse=True)
