"""Drives a running edgeway server's KServe v2 endpoints with Triton's own `tritonclient[http]`.

Usage: python kserve_client.py HOST:PORT MODEL NOT_AN_IMAGE IMAGE...
Prints one JSON object: the model's metadata, a verdict per image (all sent in one
request, binary tensors both ways, as tritonclient sends them by default), the same
through JSON outputs, and the error the server gave for a file that is not an image.
Exits non-zero with a message on the first mismatch.
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def infer(client, model, blobs, binary):
    images = httpclient.InferInput("image", [len(blobs)], "BYTES")
    images.set_data_from_numpy(np.array(blobs, dtype=np.object_), binary_data=True)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=binary)
        for name in ("pred_score", "pred_label", "anomaly_map")
    ]
    return client.infer(model, inputs=[images], outputs=outputs, request_id="batch-1")


def main() -> None:
    url, model, bad, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    client = httpclient.InferenceServerClient(url=url)
    assert client.is_server_live(), "server not live"
    assert client.is_server_ready(), "server not ready"
    assert client.is_model_ready(model), f"{model} not ready"
    assert not client.is_model_ready("no-such-model"), "an unknown model is ready"
    metadata = client.get_model_metadata(model)
    server = client.get_server_metadata()

    blobs = [open(path, "rb").read() for path in paths]
    result = infer(client, model, blobs, binary=True)
    scores = result.as_numpy("pred_score")
    labels = result.as_numpy("pred_label")
    maps = result.as_numpy("anomaly_map")
    assert scores.shape == (len(paths),), scores.shape
    assert labels.dtype == np.bool_, labels.dtype
    assert maps.shape[0] == len(paths) and maps.ndim == 3, maps.shape
    assert result.get_response()["id"] == "batch-1", result.get_response()

    as_json = infer(client, model, blobs[:1], binary=False)
    json_score = float(as_json.as_numpy("pred_score")[0])

    try:
        infer(client, model, [open(bad, "rb").read()], binary=True)
        bad_error = None
    except InferenceServerException as error:
        bad_error = {"status": error.status(), "message": str(error)}

    print(
        json.dumps(
            {
                "server": server["name"],
                "inputs": metadata["inputs"],
                "outputs": [o["name"] for o in metadata["outputs"]],
                "verdicts": [
                    {"image": path, "score": float(s), "defective": bool(l), "map_max": float(m.max())}
                    for path, s, l, m in zip(paths, scores, labels, maps)
                ],
                "map_shape": list(maps.shape),
                "json_score": json_score,
                "bad_image": bad_error,
            }
        )
    )


if __name__ == "__main__":
    main()
