"""The logged pyfunc model as code (MLflow's models-from-code).

``export.log_model`` gives MLflow this file's path as the model: MLflow copies the file into the
model folder and runs it whenever the model is loaded (``mlflow.pyfunc.load_model``); the model is
what it hands to ``mlflow.models.set_model`` (``export.set_tagger_model``, where mlflow is imported).
Loading then runs this package's code only; no pickle is written for the model, and none is read
(a ``python_model.pkl`` planted in the folder is ignored). The package does not import this file.
"""

from bioner_grid import export

export.set_tagger_model()
