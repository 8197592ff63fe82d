"""tf.cast: dtypes against numpy's astype, no gradient to integers, a saved graph keeps it."""

import numpy as np

import engine as tf


def test_cast_converts_like_astype_and_passes_no_gradient_to_integers(tmp_path):
    with tf.Graph().as_default() as graph:
        idx = tf.placeholder(np.int32, (None,), name="idx")
        w = tf.Variable(np.array([0.5, -2.0], np.float32), name="w")
        as_float = tf.cast(idx, np.float32, name="as_float")
        out = tf.reduce_sum(tf.multiply(as_float, tf.cast(w, np.float64)), name="out")
        grads = tf.gradients(out, [w])
    session = tf.Session(graph)
    session.initialize_variables()
    session.initialize_variables()
    feed = {idx: np.array([3, -1], np.int32)}
    got, value, grad = session.run([as_float, out, grads[0]], feed)
    assert got.dtype == np.float32 and got.tolist() == [3.0, -1.0]
    assert value.dtype == np.float64 and value == 3 * 0.5 + 2.0
    assert grad.dtype == np.float32 and grad.tolist() == [3.0, -1.0]  # d out / d w = idx
    tf.save(tmp_path / "g", session, {"s": {"inputs": {"idx": idx}, "outputs": {"out": out}}})
    loaded = tf.load(tmp_path / "g")
    assert loaded.predict("s", {"idx": np.array([2, 2])})["out"] == 2 * 0.5 - 2 * 2.0
