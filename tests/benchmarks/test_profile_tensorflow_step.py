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


@pytest.mark.parametrize("flags", [["--steps", "0"], ["--repeats", "-1"], ["--model", "resnet1000"]])
def test_bad_flags_are_one_line_and_exit_status_2(flags, capsys):
    assert profile_tensorflow_step.main(flags) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("profile_tensorflow_step.py: error:") and "\n" not in error
