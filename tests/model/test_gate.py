"""The quality gate as a pure function."""

from __future__ import annotations

import pytest

from model.errors import ModelError
from model.gate import GatePolicy, decide


class TestDecide:
    def test_first_model_is_promoted(self) -> None:
        decision = decide({"mse": 10.0}, None, GatePolicy())
        assert decision.promoted
        assert "first model" in decision.reason

    @pytest.mark.parametrize(
        ("candidate", "champion", "policy", "promoted"),
        [
            pytest.param(9.0, 10.0, GatePolicy(), True, id="lower-mse-wins"),
            pytest.param(10.0, 10.0, GatePolicy(), False, id="tie-is-not-promoted"),
            pytest.param(10.0, 10.0, GatePolicy(promote_ties=True), True, id="tie-promoted-when-configured"),
            pytest.param(11.0, 10.0, GatePolicy(), False, id="higher-mse-loses"),
            pytest.param(9.5, 10.0, GatePolicy(min_improvement=1.0), False, id="too-small-improvement"),
            pytest.param(8.5, 10.0, GatePolicy(min_improvement=1.0), True, id="enough-improvement"),
            pytest.param(9.0, 10.0, GatePolicy(min_improvement=1.0), False, id="exactly-min-improvement-is-a-tie"),
            pytest.param(0.6, 0.5, GatePolicy(metric="r2", direction="maximize"), True, id="maximize-higher-wins"),
            pytest.param(0.4, 0.5, GatePolicy(metric="r2", direction="maximize"), False, id="maximize-lower-loses"),
        ],
    )
    def test_policy_table(self, candidate: float, champion: float, policy: GatePolicy, promoted: bool) -> None:
        decision = decide({policy.metric: candidate}, {policy.metric: champion}, policy, champion_version=3)
        assert decision.promoted is promoted
        assert decision.champion == champion
        assert decision.champion_version == 3
        assert ("promoted:" if promoted else "not promoted:") in decision.reason

    def test_force_registers_a_worse_model_and_says_so(self) -> None:
        decision = decide({"mse": 20.0}, {"mse": 10.0}, GatePolicy(), champion_version=1, force=True)
        assert decision.promoted
        assert decision.forced
        assert decision.reason.startswith("forced:")
        assert "20" in decision.reason
        assert "10" in decision.reason

    def test_force_on_a_better_model_is_not_marked_forced(self) -> None:
        decision = decide({"mse": 5.0}, {"mse": 10.0}, GatePolicy(), force=True)
        assert decision.promoted
        assert not decision.forced

    def test_missing_metric_is_an_error_naming_it(self) -> None:
        with pytest.raises(ModelError, match="champion version 2 has no finite 'r2' metric"):
            decide({"r2": 0.5}, {"mse": 1.0}, GatePolicy(metric="r2", direction="maximize"), champion_version=2)

    @pytest.mark.parametrize("bad", [{"direction": "minimise"}, {"min_improvement": -1.0}])
    def test_bad_policy_is_refused(self, bad: dict[str, object]) -> None:
        with pytest.raises(ValueError, match="gate"):
            GatePolicy(**bad)  # type: ignore[arg-type]
