"""Sends raw JPEG bytes to a Triton model over HTTP or gRPC: the one client every CLI and test uses.

Tensor names are not written here: the client asks the server for the model's metadata and sends
the JPEG as its single ``UINT8`` input, asking for every output.

Examples:
    >>> with JpegClient(protocol="grpc") as client:
    ...     outputs = client.infer("preprocess_ensemble", Path("meter.jpg").read_bytes())
    >>> outputs["POINTER_IMAGE"].shape
    (320, 480, 3)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

__all__ = [
    "DEFAULT_URLS",
    "PROTOCOLS",
    "InferenceServerException",
    "JpegClient",
    "ModelSignature",
    "add_connection_arguments",
    "find_jpegs",
    "infer_files",
    "jpegs_or_exit",
    "run_cli",
]

PROTOCOLS = ("http", "grpc")
DEFAULT_URLS = {"http": "localhost:8000", "grpc": "localhost:8001"}
_MODULES: dict[str, ModuleType] = {"http": httpclient, "grpc": grpcclient}
_JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif"}


@dataclass(frozen=True)
class ModelSignature:
    """What the server says a model takes and returns.

    Attributes:
        input_name: name of the model's single ``UINT8`` input (the encoded JPEG).
        batched: whether the input carries a leading batch dimension.
        output_names: every output, in the model's order.
        output_dtypes: their numpy types, in the same order.
        option_names: the model's ``BYTES`` inputs (e.g. the router's model choice).
    """

    input_name: str
    batched: bool
    output_names: tuple[str, ...]
    output_dtypes: tuple[np.dtype, ...]
    option_names: tuple[str, ...] = ()


class JpegClient:
    """A connection to Triton that sends one encoded JPEG per request.

    Args:
        url: ``host:port``; defaults to the local server's port for ``protocol``.
        protocol: ``"http"`` or ``"grpc"``.
    """

    def __init__(self, url: str | None = None, protocol: str = "http") -> None:
        if protocol not in _MODULES:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        self.url = url or DEFAULT_URLS[protocol]
        self._module = _MODULES[protocol]
        self._client: Any = self._module.InferenceServerClient(self.url)
        self._signatures: dict[str, ModelSignature] = {}

    def signature(self, model: str) -> ModelSignature:
        """Reads (once) the model's input and outputs from the server.

        Raises:
            InferenceServerException: the model is unknown or not ready.
            ValueError: the model does not take exactly one ``UINT8`` input.
        """
        if model not in self._signatures:
            metadata = self._metadata(model)
            inputs = metadata["inputs"]
            jpeg_inputs = [i for i in inputs if i["datatype"] == "UINT8"]
            options = [i["name"] for i in inputs if i["datatype"] == "BYTES"]
            if len(jpeg_inputs) != 1 or len(jpeg_inputs) + len(options) != len(inputs):
                raise ValueError(
                    f"model {model!r} does not take a single UINT8 input of JPEG bytes: {inputs}"
                )
            self._signatures[model] = ModelSignature(
                input_name=jpeg_inputs[0]["name"],
                batched=len(jpeg_inputs[0]["shape"]) == 2,
                output_names=tuple(output["name"] for output in metadata["outputs"]),
                output_dtypes=tuple(
                    np.dtype(triton_to_np_dtype(output["datatype"]))
                    for output in metadata["outputs"]
                ),
                option_names=tuple(options),
            )
        return self._signatures[model]

    def infer(
        self, model: str, jpeg: bytes, options: Mapping[str, str] | None = None
    ) -> dict[str, np.ndarray]:
        """Sends one JPEG and returns every output of the model for it.

        Args:
            model: model name, e.g. ``"preprocess_ensemble"``.
            jpeg: the encoded file, as read from disk.
            options: values of the model's ``BYTES`` inputs by name, e.g. ``{"MODELS": "both"}``.

        Returns:
            Output name -> array, without the batch dimension for batched models.

        Raises:
            InferenceServerException: the server refused the request; its message says why.
        """
        signature = self.signature(model)
        data = np.frombuffer(jpeg, dtype=np.uint8)
        if signature.batched:
            data = data[np.newaxis]
        infer_input = self._module.InferInput(signature.input_name, list(data.shape), "UINT8")
        infer_input.set_data_from_numpy(data)
        inputs = [infer_input]
        for name, value in (options or {}).items():
            text = np.array([value.encode("utf-8")], dtype=np.object_)
            if signature.batched:
                text = text[np.newaxis]
            option = self._module.InferInput(name, list(text.shape), "BYTES")
            option.set_data_from_numpy(text)
            inputs.append(option)
        requested = [self._module.InferRequestedOutput(name) for name in signature.output_names]
        result = self._client.infer(model, inputs, outputs=requested)
        outputs = {}
        for name, dtype in zip(signature.output_names, signature.output_dtypes, strict=True):
            value = result.as_numpy(name)
            # tritonclient's HTTP client returns an empty output as float64 whatever its type
            # (gRPC keeps it): give it the model's type, so no caller meets a float mask.
            outputs[name] = value.astype(dtype) if value.size == 0 else value
        if signature.batched:
            outputs = {name: value[0] for name, value in outputs.items()}
        return outputs

    def parameters(self, model: str) -> dict[str, str]:
        """The ``parameters`` of the model's config as the server loaded it (string values).

        Raises:
            InferenceServerException: the model is unknown.
        """
        if self.protocol == "grpc":
            config = self._client.get_model_config(model, as_json=True)["config"]
        else:
            config = self._client.get_model_config(model)
        return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}

    def close(self) -> None:
        """Closes the connection."""
        self._client.close()

    def _metadata(self, model: str) -> dict[str, Any]:
        if self.protocol == "grpc":
            return self._client.get_model_metadata(model, as_json=True)
        return self._client.get_model_metadata(model)

    def __enter__(self) -> JpegClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def add_connection_arguments(
    parser: argparse.ArgumentParser,
    url_help: str = "Triton server host:port. Default is localhost:8000 (http) or "
    "localhost:8001 (grpc).",
) -> None:
    """Adds ``--protocol`` and ``--url``, the same in every CLI (``url_help`` says what no
    ``--url`` means where that is not the local server)."""
    parser.add_argument(
        "-i",
        "--protocol",
        choices=PROTOCOLS,
        default="http",
        help="Protocol to talk to Triton with. Default is http.",
    )
    parser.add_argument(
        "-u",
        "--url",
        default=None,
        help=url_help,
    )


def find_jpegs(paths: list[Path]) -> list[Path]:
    """Expands folders into the JPEG files they hold (sorted); files are kept as given.

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no JPEG.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in _JPEG_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"no .jpg/.jpeg files in folder {path}")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


def run_cli(main: Callable[[], int]) -> NoReturn:
    """Exits with ``main()``'s code; a reader that stops early (``| head``) ends the program
    quietly, as a Unix tool does, instead of with a ``BrokenPipeError`` traceback."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)


def jpegs_or_exit(paths: list[Path]) -> list[Path]:
    """:func:`find_jpegs` for a command line: a missing path ends the program with exit code 2
    and the reason on stderr."""
    try:
        return find_jpegs(paths)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


def infer_files(
    client: JpegClient,
    model: str,
    paths: list[Path],
    options: Mapping[str, str] | None = None,
) -> Iterator[tuple[Path, dict[str, np.ndarray] | None, float]]:
    """Sends each file in turn, as the command-line clients do.

    A file the server refuses is reported on stderr as ``<path>: error: <message>``.

    Yields:
        ``(path, outputs, elapsed_ms)``: outputs as :meth:`JpegClient.infer` returns them, or
        ``None`` for a refused file.
    """
    for path in paths:
        start = time.perf_counter()
        try:
            outputs = client.infer(model, path.read_bytes(), options)
        except InferenceServerException as error:
            print(f"{path}: error: {error.message()}", file=sys.stderr)
            outputs = None
        yield path, outputs, (time.perf_counter() - start) * 1000
