from clarion.models import Priority
from clarion.policy.decide import Reason, decide
from clarion.policy.preferences import DEFAULT, Preferences


def verdict(prefs: Preferences, priority: Priority = Priority.P1, mandatory: bool = False):
    return decide(prefs, type_name="like", priority=priority, mandatory=mandatory)


def test_defaults_deliver() -> None:
    assert verdict(DEFAULT).deliver


def test_master_switch_off_suppresses_p1_and_p2() -> None:
    off = Preferences.from_doc({"enabled": False})
    for priority in (Priority.P1, Priority.P2):
        assert verdict(off, priority).reason is Reason.MASTER_OFF


def test_p0_bypasses_the_master_switch() -> None:
    off = Preferences.from_doc({"enabled": False})
    assert verdict(off, Priority.P0).deliver


def test_p0_still_respects_a_disabled_type_unless_mandatory() -> None:
    prefs = Preferences.from_doc({"enabled": False, "types": {"like": {"enabled": False}}})
    assert verdict(prefs, Priority.P0).reason is Reason.DISABLED_TYPE
    assert verdict(prefs, Priority.P0, mandatory=True).deliver


def test_mandatory_types_bypass_the_master_switch() -> None:
    off = Preferences.from_doc({"enabled": False})
    assert verdict(off, Priority.P1, mandatory=True).deliver


def test_disabled_type_suppresses_unless_mandatory() -> None:
    prefs = Preferences.from_doc({"types": {"like": {"enabled": False}}})
    assert verdict(prefs).reason is Reason.DISABLED_TYPE
    assert verdict(prefs, mandatory=True).deliver


def test_other_types_are_unaffected() -> None:
    prefs = Preferences.from_doc({"types": {"comment": {"enabled": False}}})
    assert verdict(prefs).deliver
