"""scikit-learn estimators on random features: the same draws and conventions as the pipeline.

:class:`RandomFeatures` is a transformer ``x -> phi(W x)`` with ``W`` of shape (width, n_features)
whose entries follow a zero-mean, unit-variance law (no ``1/sqrt(p)`` factor: scale the inputs to
norm about 1, e.g. with :class:`sklearn.preprocessing.Normalizer`). :class:`RandomFeaturesRidge` is
ridge regression on those features for a whole grid of ridges, selected like
:class:`sklearn.linear_model.RidgeCV`.

Unlike the rest of rmtbench, inputs follow scikit-learn's layout: rows are samples.

Seeds. With an integer ``random_state`` ``s`` and ``key`` ``k``, the rows of ``W`` are drawn panel by
panel from ``rmtbench.rng.generator(s, *k, "panel", i)`` (see :mod:`rmtbench.weights`), exactly as
``rmtbench.empirical.RandomFeatureMap(activation, law, width, s, k)`` does in the pipeline. So
``RandomFeatures(..., random_state=s, key=k).fit_transform(X)`` equals
``RandomFeatureMap(..., s, k).features(X.T).T``; the ``rf_ridge`` kind uses
``k = ("rf", data_key(cell), law.label, repeat)``. A ``numpy.random.Generator`` draws ``W`` in one call
of the law's sampler instead (not comparable with the pipeline); ``None`` uses fresh entropy.
"""
from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, RegressorMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["DEFAULT_KEY", "RandomFeatures", "RandomFeaturesRidge"]

DEFAULT_KEY: tuple[str, ...] = ("random_features",)
"""Key of the weight draw when ``key`` is None."""


def _key_tuple(key: str | Sequence[int | str] | None) -> tuple[int | str, ...]:
    if key is None:
        return DEFAULT_KEY
    if isinstance(key, str):
        return (key,)
    items = tuple(key)
    for item in items:
        if not isinstance(item, (str, numbers.Integral)):
            raise ValueError(f"key entries must be strings or integers, got {item!r}")
    return tuple(int(i) if isinstance(i, numbers.Integral) else i for i in items)


def _check_width(width: Any) -> int:
    if not isinstance(width, numbers.Integral) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    return int(width)


def _draw_weights(law: Any, width: int, columns: int, random_state: Any, key: tuple[int | str, ...]) -> np.ndarray:
    """W (width x columns): panels of rmtbench.rng for an int seed, one draw from a Generator otherwise."""
    from rmtbench.weights import weight_rows

    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return weight_rows(law, root_seed=int(random_state), key=key, start=0, stop=width, columns=columns)
    if random_state is None:
        rng = np.random.default_rng()
    elif isinstance(random_state, np.random.Generator):
        rng = random_state
    elif isinstance(random_state, np.random.RandomState):
        # scikit-learn's legacy convention: derive a Generator from the RandomState's stream
        rng = np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    else:
        raise ValueError(f"random_state must be None, an int, a numpy Generator or RandomState, got {random_state!r}")
    return law.sample(rng, (width, columns))


class RandomFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Random features ``phi(W x)``: a scikit-learn transformer with rmtbench's weight draws.

    Parameters
    ----------
    activation : str or mapping, default="relu"
        Activation name or spec accepted by :func:`rmtbench.activations.get_activation`
        (``"relu"``, ``"erf"``, ``"ternary(s_minus=-0.5,s_plus=0.5)"``, ...).
    weights : str or mapping, default="gaussian"
        Law of the entries of ``W``, as in the config: ``"gaussian"``, ``"rademacher"``,
        ``"ternary-eps0.9"``, ``"student_t-dof5"`` or ``{"law": "ternary", "eps": 0.9}``. Every law has
        zero mean and unit variance.
    width : int, default=256
        Number of features d.
    random_state : int, numpy.random.Generator, RandomState or None, default=None
        An int is the root seed of rmtbench's panel draws (identical to the pipeline's features for
        the same ``key``); see the module notes for the exact mapping.
    key : str, tuple of str/int, or None, default=None
        Names the weight draw under an int ``random_state`` (``None``: ``("random_features",)``).

    Attributes
    ----------
    weights_ : ndarray of shape (width, n_features_in_)
        The drawn weight matrix W.
    n_features_in_ : int
        Number of input features p.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((5, 3)) / np.sqrt(3)
    >>> rf = RandomFeatures(activation="relu", width=8, random_state=1).fit(X)
    >>> rf.transform(X).shape
    (5, 8)
    >>> from rmtbench.empirical import RandomFeatureMap
    >>> from rmtbench.weights import weight_law
    >>> same = RandomFeatureMap("relu", weight_law("gaussian"), 8, 1, ("random_features",)).features(X.T).T
    >>> bool(np.array_equal(rf.transform(X), same))
    True
    """

    def __init__(
        self,
        activation: str | Mapping[str, Any] = "relu",
        weights: str | Mapping[str, Any] = "gaussian",
        width: int = 256,
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        key: str | tuple[int | str, ...] | None = None,
    ) -> None:
        self.activation = activation
        self.weights = weights
        self.width = width
        self.random_state = random_state
        self.key = key

    def fit(self, X: Any, y: Any = None) -> "RandomFeatures":
        """Draw ``W`` for the number of columns of ``X``; ``y`` is ignored.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        from rmtbench.activations import get_activation
        from rmtbench.weights import weight_law

        X = validate_data(self, X, dtype=np.float64)
        get_activation(self.activation)  # fail early on a bad spec
        law = weight_law(self.weights)
        self.weights_ = _draw_weights(law, _check_width(self.width), X.shape[1], self.random_state, _key_tuple(self.key))
        self._n_features_out = self.weights_.shape[0]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``phi(X W^T)``, shape (n_samples, width), computed as the pipeline does (``phi(W X^T)^T``)."""
        from rmtbench.activations import get_activation

        check_is_fitted(self, "weights_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        phi = get_activation(self.activation).phi
        return np.asarray(phi(self.weights_ @ X.T), dtype=np.float64).T

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags


class RandomFeaturesRidge(RegressorMixin, BaseEstimator):
    """Ridge regression on random features for a grid of ridges, from one decomposition.

    The loss is rmtbench's (formula sheet sec. 2): ``(1/2n)||y - Phi^T beta||^2 + (gamma/2)||beta||^2``
    with ``Phi = phi(W X^T)`` (width x n); ``gamma = alpha / n`` in scikit-learn's ``Ridge`` terms. One
    eigendecomposition (of the smaller of the two Grams) serves every ridge: the training errors, the
    leave-one-out errors and the coefficients of the whole grid.

    Parameters
    ----------
    activation, weights, width, random_state, key
        The random features, as in :class:`RandomFeatures`.
    gammas : float or sequence of float, default=(1e-3, 1e-2, 1e-1, 1.0)
        Ridges gamma > 0.
    cv : None or float in (0, 1), default=None
        How ``gamma_`` is chosen when several ridges are given. ``None``: the exact leave-one-out
        error, free from the same eigendecomposition (like ``RidgeCV``'s default; the refit without
        sample i keeps the penalty ``n gamma ||beta||^2`` of the full sample). A float: that fraction
        of the samples is held out, the ridge with the lowest validation MSE is kept, and the model is
        refitted on all samples. The split is drawn from ``rmtbench.rng.generator(random_state, *key,
        "validation_split")`` for an int seed, from the Generator (after W) otherwise.
    fit_intercept : bool, default=False
        Centre features and targets (an unpenalised intercept). False matches the pipeline and the
        theory.

    Attributes
    ----------
    features_ : RandomFeatures
        The fitted feature map.
    gammas_ : ndarray of shape (n_gammas,)
    coef_path_ : ndarray of shape (n_gammas, width) or (n_gammas, width, n_targets)
        Coefficients beta for every ridge.
    train_mse_ : ndarray of shape (n_gammas,)
        Training MSE (1/n)||y - Phi^T beta||^2 per ridge (averaged over targets).
    cv_mse_ : ndarray of shape (n_gammas,)
        Leave-one-out or validation MSE per ridge (averaged over targets).
    gamma_ : float
        The selected ridge.
    coef_ : ndarray of shape (width,) or (width, n_targets)
    intercept_ : float or ndarray of shape (n_targets,)
    gram_eigenvalues_ : ndarray of shape (min(n_samples, width),)
        Eigenvalues of the smaller of G = Phi^T Phi / n and Phi Phi^T / n (their non-zero parts
        agree), descending.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 4)) / 2
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(60)
    >>> model = RandomFeaturesRidge(width=100, gammas=[1e-3, 1e-1, 10.0], random_state=0).fit(X, y)
    >>> float(model.gamma_) in (1e-3, 1e-1)
    True
    >>> model.predict(X[:3]).shape, model.coef_path_.shape
    ((3,), (3, 100))
    """

    def __init__(
        self,
        activation: str | Mapping[str, Any] = "relu",
        weights: str | Mapping[str, Any] = "gaussian",
        width: int = 256,
        gammas: float | Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0),
        cv: float | None = None,
        fit_intercept: bool = False,
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        key: str | tuple[int | str, ...] | None = None,
    ) -> None:
        self.activation = activation
        self.weights = weights
        self.width = width
        self.gammas = gammas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.random_state = random_state
        self.key = key

    # -- helpers -------------------------------------------------------------------------------------
    def _gammas(self) -> np.ndarray:
        g = np.atleast_1d(np.asarray(self.gammas, dtype=np.float64))
        if g.ndim != 1 or g.size == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise ValueError(f"gammas must be a non-empty 1-D list of finite values > 0, got {self.gammas!r}")
        return g

    @staticmethod
    def _solve(Phi: np.ndarray, Y: np.ndarray, gammas: np.ndarray, *, loo: bool, intercept: bool = False) -> dict[str, np.ndarray]:
        """Coefficients, training and leave-one-out MSE for every ridge from one eigendecomposition.

        Phi is (n, d) with rows as samples (centred when ``intercept``), Y is (n, k), A = Phi / sqrt(n).
        The smaller Gram is diagonalised, as rmtbench.ridge does: for n <= d, A A^T = U diag(lam) U^T
        (the pipeline's G) gives beta = A^T U diag(1/(lam + gamma)) U^T Y / sqrt(n) and the residual
        U diag(gamma/(lam + gamma)) U^T Y; for d < n, A^T A = V diag(lam) V^T and B = A V give
        beta = V diag(1/(lam + gamma)) B^T Y / sqrt(n) and the fitted values B diag(1/(lam + gamma)) B^T Y.
        The hat matrix has diagonal h_i = sum_k B_ik^2 / (lam_k + gamma) (+ 1/n for the intercept, whose
        direction 1 is orthogonal to centred features), and the leave-one-out residual is
        r_i / (1 - h_i): the identity for penalised least squares with the penalty n gamma ||beta||^2
        held fixed (as ``RidgeCV`` holds alpha fixed). For n <= d, 1 - h_i is summed from the
        gamma/(lam + gamma) terms rather than subtracted from 1, so small ridges keep their digits.
        """
        n, d = Phi.shape
        A = Phi / np.sqrt(n)
        inv = lambda lam: 1.0 / (lam[:, None] + gammas[None, :])  # noqa: E731  (r, g)
        if n <= d:
            lam, U = np.linalg.eigh(A @ A.T)
            lam = np.clip(lam, 0.0, None)
            a = U.T @ Y  # (n, k)
            w = inv(lam)
            coef = np.einsum("dn,nr,rg,rk->gdk", A.T, U, w, a, optimize=True) / np.sqrt(n)
            damp = gammas[None, :] * w  # gamma / (lam + gamma)
            residual = np.einsum("nr,rg,rk->gnk", U, damp, a, optimize=True)
            one_minus_h = (U**2) @ damp - (1.0 / n if intercept else 0.0)  # (n, g)
        else:
            lam, V = np.linalg.eigh(A.T @ A)
            lam = np.clip(lam, 0.0, None)
            B = A @ V  # (n, d)
            b = B.T @ Y  # (d, k)
            w = inv(lam)
            coef = np.einsum("dr,rg,rk->gdk", V, w, b, optimize=True) / np.sqrt(n)
            residual = Y[None] - np.einsum("nr,rg,rk->gnk", B, w, b, optimize=True)
            one_minus_h = 1.0 - (B**2) @ w - (1.0 / n if intercept else 0.0)
        out = {"coef": coef, "train": np.mean(residual**2, axis=(1, 2)), "eigvals": lam[::-1].copy()}
        if loo:
            out["loo"] = np.mean((residual / one_minus_h.T[:, :, None]) ** 2, axis=(1, 2))
        return out

    def _split_rng(self) -> np.random.Generator:
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            from rmtbench.rng import generator

            return generator(int(rs), *_key_tuple(self.key), "validation_split")
        if isinstance(rs, np.random.Generator):
            return rs
        if isinstance(rs, np.random.RandomState):
            return np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        return np.random.default_rng()

    # -- scikit-learn API ----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> "RandomFeaturesRidge":
        """Draw the features, fit every ridge of the grid and select ``gamma_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        gammas = self._gammas()
        if self.cv is not None and not (isinstance(self.cv, numbers.Real) and 0.0 < float(self.cv) < 1.0):
            raise ValueError(f"cv must be None (leave-one-out) or a held-out fraction in (0, 1), got {self.cv!r}")
        self.features_ = RandomFeatures(
            activation=self.activation, weights=self.weights, width=self.width, random_state=self.random_state, key=self.key
        ).fit(X)
        Phi = self.features_.transform(X)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        n = Phi.shape[0]

        if self.cv is not None:
            order = self._split_rng().permutation(n)
            n_val = int(round(float(self.cv) * n))
            if n_val < 1 or n - n_val < 1:
                raise ValueError(f"cv={self.cv} leaves no validation or no training sample out of {n}")
            val, train = order[:n_val], order[n_val:]
            Phi_tr, Y_tr, shift_phi, shift_y = self._centre(Phi[train], Y[train])
            coef = self._solve(Phi_tr, Y_tr, gammas, loo=False)["coef"]
            predictions = (Phi[val] - shift_phi) @ coef + shift_y  # (g, n_val, k)
            cv_mse = np.mean((Y[val][None] - predictions) ** 2, axis=(1, 2))

        Phi_c, Y_c, mean_phi, mean_y = self._centre(Phi, Y)
        solved = self._solve(Phi_c, Y_c, gammas, loo=self.cv is None, intercept=self.fit_intercept)
        if self.cv is None:
            cv_mse = solved["loo"]
        best = int(np.argmin(cv_mse))
        path = solved["coef"]
        self.gammas_ = gammas
        self.cv_mse_ = cv_mse
        self.train_mse_ = solved["train"]
        self.gram_eigenvalues_ = solved["eigvals"]
        self.gamma_ = float(gammas[best])
        self._intercept_path = mean_y[None, :] - np.einsum("d,gdk->gk", mean_phi, path)  # (g, k)
        single = y.ndim == 1
        self.coef_path_ = path[:, :, 0] if single else path
        self.coef_ = self.coef_path_[best]
        self.intercept_ = float(self._intercept_path[best, 0]) if single else self._intercept_path[best]
        return self

    def _centre(self, Phi: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.fit_intercept:
            return Phi, Y, np.zeros(Phi.shape[1]), np.zeros(Y.shape[1])
        mean_phi, mean_y = Phi.mean(axis=0), Y.mean(axis=0)
        return Phi - mean_phi, Y - mean_y, mean_phi, mean_y

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the selected ridge ``gamma_``."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.features_.transform(X) @ self.coef_ + self.intercept_

    def predict_path(self, X: Any) -> np.ndarray:
        """Predictions of every ridge: shape (n_gammas, n_samples) or (n_gammas, n_samples, n_targets)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Phi = self.features_.transform(X)
        if self.coef_path_.ndim == 2:
            return np.einsum("nd,gd->gn", Phi, self.coef_path_) + self._intercept_path[:, :1]
        return np.einsum("nd,gdk->gnk", Phi, self.coef_path_) + self._intercept_path[:, None, :]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

