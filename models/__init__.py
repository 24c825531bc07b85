"""Model zoo: small models and the bundled data they train on (see lenet.py, mlp.py, data.py)."""
