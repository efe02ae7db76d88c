"""scripts/profile_tensorflow_step.py: it sums a profiler trace's op kernels by type, and refuses bad flags
(not its figures)."""

import pytest

from testing_utils import load_script

pytestmark = pytest.mark.backend_independent

profile_tensorflow_step = load_script("profile_tensorflow_step")


@pytest.mark.parametrize(
    "name, kind",
    [
        # As TensorFlow 2.21 names them on a CPU with oneDNN.
        ("StatefulPartitionedCall/resnet18_1/stage1_1/conv1_1/convolution:_MklNativeConv2D", "_MklNativeConv2D"),
        ("StatefulPartitionedCall/gradient_tape/x/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter",
         "_MklNativeConv2DBackpropFilter"),
        ("StatefulPartitionedCall/adam/mul_1:Mul", "Mul"),
        ("ExecutorState::Process", None),
        ("MakeIterator::PrefetchDataset", None),
        ("EagerLocalExecute: __inference_multi_step_on_iterator_13339", None),
        ("tf.function:multi_step_on_iterator", None),
        ("StatefulPartitionedCall:StatefulPartitionedCall", None),
    ],
)
def test_op_kernel_events_are_told_from_the_profilers_own_spans(name, kind):
    assert profile_tensorflow_step.op_type(name) == kind


def test_kernel_times_sum_each_op_type_per_step_on_host_planes_only():
    pytest.importorskip("tensorflow")
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    host = space.planes.add(name="/host:CPU")
    host.event_metadata[1].name = "model/conv/convolution:Conv2D"
    host.event_metadata[2].name = "model/bn/mul:Mul"
    host.event_metadata[3].name = "ExecutorState::Process"  # spans the kernels: not counted
    line = host.lines.add(name="tf_Compute")
    for metadata_id, milliseconds in ((1, 3.0), (1, 5.0), (2, 1.0), (3, 100.0)):
        line.events.add(metadata_id=metadata_id, duration_ps=int(milliseconds * 1e9))
    device = space.planes.add(name="/device:GPU:0")
    device.event_metadata[1].name = "volta_sgemm:Conv2D"
    device.lines.add(name="stream").events.add(metadata_id=1, duration_ps=int(7e9))
    kernels = profile_tensorflow_step.kernel_times(space.SerializeToString(), steps=2)
    assert kernels == {"Conv2D": [pytest.approx(4.0), 1.0], "Mul": [pytest.approx(0.5), 0.5]}
    assert profile_tensorflow_step.is_convolution("Conv2DBackpropInput")
    assert not profile_tensorflow_step.is_convolution("Mul")


@pytest.mark.parametrize(
    "flags", [["--steps", "0"], ["--repeats", "-1"], ["--model", "resnet1000"], ["--model", "se_resnet18"]]
)
def test_bad_flags_are_one_line_and_exit_status_2(flags, capsys):
    assert profile_tensorflow_step.main(flags) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("profile_tensorflow_step.py: error:") and "\n" not in error


@pytest.mark.parametrize(
    "kind, category",
    [
        ("_MklNativeConv2DBackpropFilter", "convolution"),
        ("_MklMatMul", "matrix product"),
        ("_MklBatchMatMulV2", "matrix product"),
        ("Mul", "other"),
    ],
)
def test_tensorflow_op_kinds(kind, category):
    assert profile_tensorflow_step.tensorflow_op_kind(kind) == category


def test_plain_torch_worker_reports_what_the_tensorflow_profile_reads():
    # The two scripts talk through the worker's JSON line: run the worker for a GradAttn model and
    # feed its report, with a synthetic TensorFlow one, to the printing code.
    pytest.importorskip("torch")
    profile_jax_step = load_script("profile_jax_step")
    torch_report = profile_jax_step.plain_torch_worker(steps=1, repeats=1, model_name="gradattn_learned_pe")
    assert torch_report["model"] == "gradattn_learned_pe" and torch_report["step_ms"] > 0
    # GradAttn has convolutions (backbone) and matrix products (taps, encoder, classifier).
    kinds = torch_report["kinds_ms"]
    assert set(kinds) <= set(profile_tensorflow_step.OP_KINDS)
    assert kinds["convolution"] > 0 and kinds["matrix product"] > 0
    costs = [ms for ms, _ in torch_report["ops"].values()]
    assert costs == sorted(costs, reverse=True)
    assert profile_jax_step.torch_op_kind("aten::addmm") == "matrix product"
    assert profile_jax_step.torch_op_kind("aten::convolution_backward") == "convolution"
    assert profile_jax_step.torch_op_kind("aten::mul") == "other"


def test_report_groups_both_sides_by_kind(monkeypatch, capsys):
    import json
    import subprocess

    reports = {
        "tensorflow": {"step_ms": 500.0, "jit_compile": False,
                       "kernels": {"_MklNativeConv2D": [200.0, 17], "_MklMatMul": [50.0, 66], "Mul": [30.0, 900],
                                   "AddV2": [20.0, 400]}},
        "plain_torch": {"step_ms": 400.0, "kinds_ms": {"convolution": 150.0, "matrix product": 40.0, "other": 100.0},
                        "ops": {"aten::convolution_backward": [110.0, 20], "aten::mul": [30.0, 300]}},
    }  # fmt: skip

    def fake_run(command, **kwargs):
        side = "plain_torch" if "plain_torch" in command else "tensorflow"
        if side == "plain_torch":
            assert command[command.index("--worker-model") + 1] == "gradattn_nope"
        return subprocess.CompletedProcess(command, 0, stdout="noise\n" + json.dumps(reports[side]) + "\n")

    monkeypatch.setattr(profile_tensorflow_step.subprocess, "run", fake_run)
    assert profile_tensorflow_step.main(["--model", "gradattn_nope"]) == 0
    out = capsys.readouterr().out
    assert "| TensorFlow (graph, oneDNN; kernel time) | 500.0 | 200.0 | 50.0 | 50.0 | 300.0 |" in out
    assert "| plain PyTorch (eager, oneDNN; self time) | 400.0 | 150.0 | 40.0 | 100.0 | 290.0 |" in out
    assert out.index("aten::convolution_backward") < out.index("aten::mul")
