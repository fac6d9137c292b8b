"""A stand-in for OpenVINO with bf16 inference, for CPUs without native bf16 (where the real one silently
computes in fp32): ONNX Runtime in fp32, its output rounded to bfloat16.

Only tests put it on a path (sys.path, or python_path in pgbert.settings, which only a superuser sets):
engines.OpenVinoEngine then runs it as it runs OpenVINO. As with real bf16 kernels, whose blocking follows the
batch's shape, a text's vector batched with others differs in its last bits from the same text's alone.
"""
import numpy as np

__version__ = "fake-bf16 (tests/fake_openvino)"


def bf16(x: np.ndarray) -> np.ndarray:
    """float32 rounded to the nearest bfloat16 (ties to even), as float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    bits = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


class _Port:
    def __init__(self, name: str, width: int | None = None):
        self.name, self.width = name, width

    def get_any_name(self) -> str:
        return self.name

    def get_partial_shape(self):
        return [_Dimension(self.width)]


class _Dimension:
    def __init__(self, length):
        self.length = length
        self.is_static = isinstance(length, int)

    def get_length(self) -> int:
        return self.length


class _Request:
    def __init__(self, model):
        self.model = model

    def infer(self, feeds: dict) -> dict:
        hidden = bf16(self.model.session.run(None, feeds)[0])
        # One float32 ulp more on every 7th feature, which ones picked by the batch's shape.
        first = (hidden.shape[0] * hidden.shape[1]) % 7
        hidden[..., first::7] = np.nextafter(hidden[..., first::7], np.float32(np.inf))
        return {self.model.outputs[0]: hidden}


class CompiledModel:
    def __init__(self, path: str, config: dict):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(config.get("INFERENCE_NUM_THREADS") or 1)
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [_Port(i.name) for i in self.session.get_inputs()]
        width = self.session.get_outputs()[0].shape[-1]
        self.outputs = [_Port(self.session.get_outputs()[0].name, width if isinstance(width, int) else None)]

    def create_infer_request(self) -> _Request:
        return _Request(self)


class Core:
    def compile_model(self, path: str, device: str, config: dict) -> CompiledModel:
        assert device == "CPU" and config.get("INFERENCE_PRECISION_HINT") == "bf16", (device, config)
        return CompiledModel(path, config)
