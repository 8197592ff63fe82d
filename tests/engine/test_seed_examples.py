"""The seed article's worked examples, its code run under `import engine` with one added line.

The line is `session.run(global_variables_initializer())`: as in TF-1, reading a variable
before its initializer runs raises FailedPreconditionError (the seed's TensorSlow read the
initial value directly).

Point clouds are the TensorSlow tutorial's (the seed refers to them as blue_points / red_points).
"""

from __future__ import annotations

import numpy as np

import engine as tf
from engine.autodiff import _REGISTRY
from engine.graph import OP_TYPES


def _separable_clouds():
    np.random.seed(0)
    red_points = np.random.randn(50, 2) - 2 * np.ones((50, 2))
    blue_points = np.random.randn(50, 2) + 2 * np.ones((50, 2))
    return blue_points, red_points


def _xor_clouds():
    np.random.seed(1)
    red_points = np.concatenate(
        (
            0.2 * np.random.randn(25, 2) + np.array([[0, 0]] * 25),
            0.2 * np.random.randn(25, 2) + np.array([[1, 1]] * 25),
        )
    )
    blue_points = np.concatenate(
        (
            0.2 * np.random.randn(25, 2) + np.array([[0, 1]] * 25),
            0.2 * np.random.randn(25, 2) + np.array([[1, 0]] * 25),
        )
    )
    return blue_points, red_points


def _accuracy(probabilities, n_blue):
    truth = np.array([0] * n_blue + [1] * (len(probabilities) - n_blue))
    return float((np.argmax(probabilities, axis=1) == truth).mean())


def test_affine_transform_gives_2_minus_1():
    from engine import (
        Graph,
        Session,
        Variable,
        add,
        global_variables_initializer,
        matmul,
        placeholder,
    )

    # --- seed code, unchanged ---
    # Create a new graph
    Graph().as_default()
    # Create variables
    A = Variable([[1, 0], [0, -1]])
    b = Variable([1, 1])
    # Create placeholder
    x = placeholder()
    # Create hidden node y
    y = matmul(A, x)
    # Create output node z
    z = add(y, b)
    session = Session()
    # TF-1 (and the engine since #18) needs this one line beyond the seed's code:
    session.run(global_variables_initializer())
    output = session.run(z, {x: [1, 2]})
    print(output)
    # --- end of seed code ---
    np.testing.assert_array_equal(output, [2, -1])
    assert output.dtype.kind == "i"  # integer variables keep their dtype


def test_seed_cross_entropy_loss_matches_numpy():
    from engine import (
        Graph,
        Session,
        Variable,
        add,
        global_variables_initializer,
        log,
        matmul,
        multiply,
        negative,
        placeholder,
        reduce_sum,
        softmax,
    )

    blue_points, red_points = _separable_clouds()
    # --- seed code, unchanged ---
    # Create a new graph
    Graph().as_default()
    X = placeholder()
    c = placeholder()
    W = Variable([[1, -1], [1, -1]])
    b = Variable([0, 0])
    p = softmax(add(matmul(X, W), b))
    # Cross-entropy loss
    J = negative(reduce_sum(reduce_sum(multiply(c, log(p)), axis=1)))
    session = Session()
    # TF-1 (and the engine since #18) needs this one line beyond the seed's code:
    session.run(global_variables_initializer())
    print(
        session.run(
            J,
            {
                X: np.concatenate((blue_points, red_points)),
                c: [[1, 0]] * len(blue_points) + [[0, 1]] * len(red_points),
            },
        )
    )
    # --- end of seed code ---
    points = np.concatenate((blue_points, red_points))
    logits = points @ np.array([[1, -1], [1, -1]])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([[1, 0]] * 50 + [[0, 1]] * 50)
    expected = -np.sum(labels * np.log(probs))
    feed = {X: points, c: labels}
    np.testing.assert_allclose(session.run(J, feed), expected, rtol=1e-12)


def test_perceptron_trains_on_two_point_clouds():
    from engine import (
        Graph,
        Session,
        Variable,
        add,
        global_variables_initializer,
        log,
        matmul,
        multiply,
        negative,
        placeholder,
        reduce_sum,
        softmax,
        train,
    )

    blue_points, red_points = _separable_clouds()
    GradientDescentOptimizer = train.GradientDescentOptimizer
    losses = []
    # --- seed code (TensorSlow's perceptron), unchanged apart from recording the loss ---
    Graph().as_default()
    X = placeholder()
    c = placeholder()
    W = Variable(np.random.randn(2, 2))
    b = Variable(np.random.randn(2))
    p = softmax(add(matmul(X, W), b))
    J = negative(reduce_sum(reduce_sum(multiply(c, log(p)), axis=1)))
    minimization_op = GradientDescentOptimizer(learning_rate=0.01).minimize(J)
    feed_dict = {
        X: np.concatenate((blue_points, red_points)),
        c: [[1, 0]] * len(blue_points) + [[0, 1]] * len(red_points),
    }
    session = Session()
    # TF-1 (and the engine since #18) needs this one line beyond the seed's code:
    session.run(global_variables_initializer())
    for step in range(100):
        J_value = session.run(J, feed_dict)
        losses.append(J_value)
        if step % 10 == 0:
            print("Step:", step, " Loss:", J_value)
        session.run(minimization_op, feed_dict)
    # --- end of seed code ---
    assert losses[-1] < 0.5 * losses[0]
    assert _accuracy(session.run(p, feed_dict), len(blue_points)) > 0.95


def test_mlp_trains_on_xor_point_clouds():
    blue_points, red_points = _xor_clouds()
    np.random.seed(3)
    losses = []
    # --- seed code, unchanged apart from recording the loss ---
    # Create a new graph
    tf.Graph().as_default()
    # Create training input placeholder
    X = tf.placeholder()
    # Create placeholder for the training classes
    c = tf.placeholder()
    # Build a hidden layer
    W_hidden1 = tf.Variable(np.random.randn(2, 4))
    b_hidden1 = tf.Variable(np.random.randn(4))
    p_hidden1 = tf.sigmoid(tf.add(tf.matmul(X, W_hidden1), b_hidden1))
    # Build a hidden layer
    W_hidden2 = tf.Variable(np.random.randn(4, 8))
    b_hidden2 = tf.Variable(np.random.randn(8))
    p_hidden2 = tf.sigmoid(tf.add(tf.matmul(p_hidden1, W_hidden2), b_hidden2))
    # Build a hidden layer
    W_hidden3 = tf.Variable(np.random.randn(8, 2))
    b_hidden3 = tf.Variable(np.random.randn(2))
    p_hidden3 = tf.sigmoid(tf.add(tf.matmul(p_hidden2, W_hidden3), b_hidden3))
    # Build the output layer
    W_output = tf.Variable(np.random.randn(2, 2))
    b_output = tf.Variable(np.random.randn(2))
    p_output = tf.softmax(tf.add(tf.matmul(p_hidden3, W_output), b_output))
    # Build cross-entropy loss
    J = tf.negative(tf.reduce_sum(tf.reduce_sum(tf.multiply(c, tf.log(p_output)), axis=1)))
    # Build minimization op
    minimization_op = tf.train.GradientDescentOptimizer(learning_rate=0.03).minimize(J)
    # Build placeholder inputs
    feed_dict = {
        X: np.concatenate((blue_points, red_points)),
        c: [[1, 0]] * len(blue_points) + [[0, 1]] * len(red_points),
    }
    # Create session
    session = tf.Session()
    # TF-1 (and the engine since #18) needs this one line beyond the seed's code:
    session.run(tf.global_variables_initializer())
    # Perform 100 gradient descent steps
    for step in range(2000):
        J_value = session.run(J, feed_dict)
        losses.append(J_value)
        if step % 100 == 0:
            print("Step:", step, " Loss:", J_value)
        session.run(minimization_op, feed_dict)
    # --- end of seed code ---
    assert losses[-1] < 0.2 * losses[0]
    # The first few hundred full-batch steps at this rate are chaotic, and their path
    # depends on the CPU's exp/log and BLAS kernels (it differs between Intel and AMD);
    # once the clouds are separated the loss falls steadily.
    assert np.all(np.diff(losses[1000::100]) < 0)
    assert _accuracy(session.run(p_output, feed_dict), len(blue_points)) > 0.95


def test_seed_style_user_op_and_gradient_registration(monkeypatch):
    from engine import Operation, RegisterGradient

    # Keep the built-in registrations the seed code below overrides.
    monkeypatch.setattr("engine.autodiff._REGISTRY", dict(_REGISTRY))
    monkeypatch.setattr("engine.graph.OP_TYPES", dict(OP_TYPES))
    from engine import autodiff as gradients_module

    # --- seed code, unchanged ---
    class add(Operation):
        def __init__(self, x, y):
            super().__init__([x, y])

        def compute(self, x_value, y_value):
            self.inputs = [x_value, y_value]
            return x_value + y_value

    @RegisterGradient("sigmoid")
    def _sigmoid_gradient(op, grad):
        sigmoid = op.output
        return grad * sigmoid * (1 - sigmoid)

    # --- end of seed code ---
    @RegisterGradient("scaled_square")
    def _scaled_square_gradient(op, grad):
        (x,) = op.inputs
        return grad * 2 * op.scale * x

    class ScaledSquare(Operation):
        op_type = "scaled_square"

        def __init__(self, x, scale):
            super().__init__([x], scale=scale)

        def compute(self, x_value):
            return self.scale * x_value * x_value

    assert gradients_module._REGISTRY["sigmoid"] is _sigmoid_gradient
    x = tf.placeholder(tf.float64, (3,))
    w = tf.Variable(np.array([0.5, -1.0, 2.0]))
    loss = tf.reduce_sum(ScaledSquare(tf.sigmoid(add(x, w)), 3.0))
    grad_w = tf.gradients(loss, [w])[0]
    xv = np.array([0.1, 0.2, -0.3])
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        got = session.run(grad_w, {x: xv})
    s = 1 / (1 + np.exp(-(xv + w.initial_value)))
    np.testing.assert_allclose(got, 3.0 * 2 * s * s * (1 - s), rtol=1e-12)
