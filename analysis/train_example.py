"""The plain Keras script a user writes with tfapprox.

Samples a bundled target preset, builds the one-layer Transformer of Jiang & Li (2024)
twice, once with `tfapprox.models.build_transformer` and once by stacking
`tfapprox.layers` by hand in a functional model, trains both with
``compile``/``fit`` and the usual callbacks, saves them as ``.keras`` and
exports a TensorFlow SavedModel. Everything tfapprox-specific is in the
layers; the rest is ordinary Keras.

Run from the repository root::

    python -m analysis.train_example --out runs/train_example
    python -m analysis.train_example --quick
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np


def make_dataset(preset, num_samples, seed):
    """``num_samples`` sequences of a bundled target preset (`tfapprox target list`)."""
    from tfapprox.targets import load_preset

    return load_preset(preset).sample(num_samples, seed=seed)


def build_by_hand(budget, sequence_length, input_dim, output_dim):
    """The same model as `build_transformer`, stacked from tfapprox layers."""
    import keras

    from tfapprox import layers

    inputs = keras.Input(shape=(sequence_length, input_dim), name="x")
    h = layers.PositionEncoding(sequence_length, mode="learned", name="position_encoding")(inputs)
    h = layers.FeedForward(budget.m_ff, budget.n, depth=budget.ff_depth, name="f_hat")(
        h
    )  # (b, tau, n)
    h = layers.SingleHeadAttention(budget.m_h, budget.m_v, name="attention")(h)  # (b, tau, m_v)
    outputs = layers.FeedForward(budget.m_ff, output_dim, depth=budget.ff_depth, name="F_hat")(h)
    return keras.Model(inputs, outputs, name="by_hand")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    parser.add_argument(
        "--preset", default="default", help="bundled target preset (default: default)"
    )
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--m-h", type=int, default=4)
    parser.add_argument("--m-ff", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.n, args.m_h, args.m_ff, args.epochs = 256, 4, 2, 8, 4
        args.batch_size = 64
    return args


def main(argv=None):
    """Train, save and export; return the losses, counts and paths as a dict."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    import tfapprox
    from tfapprox.export import export_saved_model, save_model
    from tfapprox.models import build_transformer

    out = args.out or tempfile.mkdtemp(prefix="tfapprox-train-example-")
    keras.utils.set_random_seed(args.seed)
    dataset = make_dataset(args.preset, args.samples, args.seed)
    source = f"preset:{args.preset}"
    split = int(0.9 * dataset.num_samples)
    x_train, y_train = dataset.x[:split], dataset.y[:split]
    x_val, y_val = dataset.x[split:], dataset.y[split:]
    budget = tfapprox.Budget(n=args.n, m_h=args.m_h, m_ff=args.m_ff)
    tau, d = dataset.sequence_length, dataset.input_dim
    labels = dataset.task == "labels"

    models = {
        "build_transformer": build_transformer(
            budget, tau, d, output_dim=dataset.output_dim, output="pooled" if labels else "sequence"
        ),
    }
    report = {"data": source, "samples": dataset.num_samples, "sequence_length": tau, "out": out}
    report["budget"] = budget.to_dict()
    probe = x_val[:8]
    if not labels:  # the hand-built model has the sequence output
        # The same function: with the same weights, the same predictions.
        twin = build_by_hand(budget, tau, d, dataset.output_dim)
        twin.set_weights(models["build_transformer"].get_weights())
        twins = [model.predict(probe, verbose=0) for model in (models["build_transformer"], twin)]
        report["same_weights_max_abs_diff"] = float(np.abs(twins[0] - twins[1]).max())
        # Trained from its own initial weights.
        keras.utils.set_random_seed(args.seed + 1)
        models["by_hand"] = build_by_hand(budget, tau, d, dataset.output_dim)
    report["parameter_count"] = budget.parameter_count(tau, d, dataset.output_dim)
    for name, model in models.items():
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) if labels else "mse",
            metrics=["accuracy"] if labels else [],
        )
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=args.epochs,
            batch_size=args.batch_size,
            callbacks=[
                keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=10),
                keras.callbacks.EarlyStopping(
                    monitor="loss", patience=30, restore_best_weights=True
                ),
            ],
            verbose=0 if args.quick else 2,
        )
        keras_path = save_model(model, os.path.join(out, f"{name}.keras"))
        saved_path = export_saved_model(model, os.path.join(out, f"{name}_saved_model"))

        # Reload both: the .keras file needs only `import tfapprox`; the
        # SavedModel serves with plain TensorFlow.
        reloaded = keras.saving.load_model(keras_path)
        served = tf.saved_model.load(saved_path)
        predicted = model.predict(probe, verbose=0)
        report[name] = {
            "loss": float(history.history["loss"][-1]),
            "first_loss": float(history.history["loss"][0]),
            "val_loss": float(history.history["val_loss"][-1]),
            "epochs": len(history.history["loss"]),
            "count_params": int(model.count_params()),
            "keras_path": keras_path,
            "saved_model_path": saved_path,
            "keras_max_abs_diff": float(
                np.abs(reloaded.predict(probe, verbose=0) - predicted).max()
            ),
            "saved_model_max_abs_diff": float(
                np.abs(served.serve(probe).numpy() - predicted).max()
            ),
        }
    if not args.quick:
        print(json.dumps(report, indent=2, sort_keys=True))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
