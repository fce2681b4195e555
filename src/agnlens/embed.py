"""t-SNE maps of spectra (openTSNE), and placing new spectra into an existing map.

The study (Peruzzi et al. 2021) shows the sample as a two-dimensional t-SNE map with perplexity 50.
:func:`tsne` reduces the spectra to 50 principal components first (as is usual for t-SNE of
high-dimensional data: it removes pixel noise and makes the neighbour search fast), then runs
openTSNE with PCA initialisation. Barnes-Hut gradients are used below about 10⁴ spectra and FFT
interpolation above: on 3,346 spectra × 50 components and 2 cores, openTSNE Barnes-Hut took 11 s,
openTSNE FFT 49 s, with the same k-NN accuracy of the map. Measured here on the default simulated
sample (3,346 × 1,000 pixels, ``simulate_set(3346, seed=0)``), PCA + openTSNE Barnes-Hut: 11.4 s
of CPU with one thread (v0.1, approximate neighbours), 10-NN label accuracy 0.84.
The Barnes-Hut opening angle is :data:`BH_THETA` = 0.8 (openTSNE's default 0.5): in one run on
that sample (busy machine, one thread) it took 139 s against 204 s at 0.5 (1.48x faster), with
10-NN accuracy 0.835 against 0.837.

The neighbours behind the affinities are found exactly (scikit-learn's brute-force search on all
cores) up to :data:`EXACT_NEIGHBOURS_MAX` spectra, by openTSNE's approximate Annoy search above.
On 10⁵ simulated spectra × 50 components (2-core AMD EPYC) the exact search of the 150 neighbours
took 35 s against Annoy's 98 s on one thread (55 s on two), and the map's 10-NN accuracy was
nearly the same (0.907 against 0.908). The exact search also makes the map independent of the
thread count (the Annoy index is built differently on more threads), so the threads are a matter
of speed only and openTSNE runs on all cores by default: on 3,346 spectra (Barnes-Hut) 16.5 s on
one thread against 8.7–10.4 s on two, on 10⁵ spectra (FFT) 367 s against 276 s.

The result is an :class:`Embedding` object that keeps the fitted PCA and the openTSNE embedding,
so that new spectra can be placed into the same map (:meth:`Embedding.transform`), and that can
score (:meth:`Embedding.knn_accuracy`, :meth:`Embedding.trustworthiness`) and plot itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

logger = logging.getLogger(__name__)

#: Barnes-Hut opening angle (the accuracy/speed trade-off of the repulsive forces; see the module notes).
BH_THETA = 0.8

#: Above this many spectra, "auto" switches from Barnes-Hut to FFT-interpolated gradients.
FFT_THRESHOLD = 10_000

#: Up to this many spectra the neighbours are found exactly (quadratic cost: 35 s at 10⁵ spectra on
#: 2 cores, ~4x that at this limit), by openTSNE's approximate Annoy search above.
EXACT_NEIGHBOURS_MAX = 200_000

#: Up to this many new spectra are placed into a map on one thread: the threads synchronise every
#: iteration, which costs more than the work of a few points. Placing 19 spectra into the 3,346-spectrum
#: map took 3.0 s on one thread and 30.7 s on two (2-core machine under load).
PLACE_ONE_THREAD_MAX = 1000

_METHOD_NAMES = {"bh": "openTSNE Barnes-Hut", "fft": "openTSNE FFT"}


def _as_matrix(X: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array of shape (n_spectra, n_pixels): {exc}") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_spectra, n_pixels), got shape {arr.shape}; "
            "pass SpectrumSet.flux or reshape a single spectrum with x[None, :]"
        )
    if not np.all(np.isfinite(arr)):
        n_bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(
            f"{name} has non-finite values in {n_bad} spectra; "
            "preprocess them first (agnlens.preprocess fills masked pixels)"
        )
    return arr


@dataclass(eq=False)
class Embedding:
    """A t-SNE map of spectra, able to place new spectra into itself.

    Created by :func:`tsne`; do not build it by hand.

    Attributes
    ----------
    coords : ndarray of shape (n_spectra, n_components)
        The map coordinates of the embedded spectra, in input order.
    perplexity : float
        The perplexity used.
    method : {"bh", "fft"}
        The negative-gradient method that was used ("auto" resolved).
    seed : int
        The random seed (PCA, neighbour search, optimisation).
    n_jobs : int
        Threads used by openTSNE (-1: all cores).
    n_pca : int or None
        Number of principal components the spectra were reduced to (None: no PCA).
    fit_s : float
        Wall-clock seconds of the whole fit.
    """

    coords: np.ndarray
    perplexity: float
    method: str
    seed: int
    n_jobs: int
    n_pca: int | None
    fit_s: float
    _pca: Any = field(repr=False, default=None)
    _tsne: Any = field(repr=False, default=None)
    _n_features: int = field(repr=False, default=0)

    @property
    def n(self) -> int:
        """Number of embedded spectra."""
        return int(self.coords.shape[0])

    @property
    def method_name(self) -> str:
        """Human-readable method, e.g. ``"openTSNE Barnes-Hut"`` (for metrics.json)."""
        return _METHOD_NAMES.get(self.method, self.method)

    def _reduce(self, X: np.ndarray) -> np.ndarray:
        if X.shape[1] != self._n_features:
            raise ValueError(
                f"the map was fitted on spectra with {self._n_features} pixels, got {X.shape[1]}; "
                "resample the new spectra onto the same wavelength grid first"
            )
        return X if self._pca is None else self._pca.transform(X)

    def transform(self, X_new: Any) -> np.ndarray:
        """Place new spectra into the existing map without moving the old ones.

        The new spectra go through the same PCA, then openTSNE's
        :meth:`openTSNE.TSNEEmbedding.transform` optimises only their positions against the
        fitted map (initialised at the median of their nearest neighbours in the map).

        Parameters
        ----------
        X_new : array-like of shape (n_new, n_pixels)
            New spectra on the grid the map was fitted on.

        Returns
        -------
        ndarray of shape (n_new, n_components)
            Their map coordinates.
        """
        X = _as_matrix(X_new, "X_new")
        Z = self._reduce(X)
        params = self._tsne.gradient_descent_params
        threads = params.get("n_jobs")
        if X.shape[0] <= PLACE_ONE_THREAD_MAX:
            params["n_jobs"] = 1  # see PLACE_ONE_THREAD_MAX
        try:
            placed = np.array(self._tsne.transform(Z), dtype=np.float64)
        finally:
            params["n_jobs"] = threads
        # openTSNE re-centres the reference embedding in place before placing new points
        # (prepare_interpolation_grid); shift the new points back into the frame of ``coords``
        offset = (self.coords - np.asarray(self._tsne, dtype=np.float64)).mean(axis=0)
        return placed + offset

    def save(self, path, **extra: Any) -> None:
        """Write the map to an ``.npz`` file (plain arrays, no pickle), atomically.

        It holds the coordinates, the PCA, the reduced spectra (the neighbour search of
        :meth:`transform` runs on them) and the optimiser's settings; :func:`load_embedding` rebuilds
        an Embedding that places new spectra as this one does. ``extra`` arrays (e.g. the labels)
        are stored beside them.
        """
        import json

        from agnlens.atomic import atomic_path

        if self._tsne is None:
            raise ValueError("this Embedding has no fitted openTSNE map to save")
        Z = np.asarray(self._tsne.affinities.knn_index.data, dtype=np.float64)  # the spectra the map was fitted on
        params = {k: v for k, v in self._tsne.gradient_descent_params.items()
                  if isinstance(v, (int, float, str, bool)) or v is None}
        settings = {"perplexity": self.perplexity, "method": self.method, "seed": self.seed, "n_jobs": self.n_jobs,
                    "n_pca": self.n_pca, "fit_s": self.fit_s, "n_features": self._n_features, "params": params}
        arrays: dict[str, Any] = {"coords": self.coords, "reference": np.asarray(self._tsne, dtype=np.float64),
                                  "Z": Z, "settings": np.array(json.dumps(settings))}
        if self._pca is not None:
            arrays |= {"pca_mean": self._pca.mean_, "pca_components": self._pca.components_,
                       "pca_variance": self._pca.explained_variance_}
        arrays |= {f"extra_{k}": np.asarray(v) for k, v in extra.items()}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    def knn_accuracy(self, labels: Any, k: int = 10) -> float:
        """Leave-one-out k-nearest-neighbour label accuracy in the map.

        Each spectrum is given the majority label of its ``k`` nearest *other* spectra in the map
        (Euclidean; a tie goes to the label that sorts first); the score is the fraction of
        spectra whose label is recovered. A high value means that the classes form coherent
        regions of the map.

        Parameters
        ----------
        labels : array-like of shape (n_spectra,)
            Class label of every embedded spectrum.
        k : int, default 10
            Number of neighbours.

        Returns
        -------
        float in [0, 1]
        """
        from sklearn.neighbors import NearestNeighbors

        y = np.asarray(labels)
        if y.shape != (self.n,):
            raise ValueError(f"labels must have shape ({self.n},) like the map, got {y.shape}")
        if not isinstance(k, (int, np.integer)) or not 1 <= k < self.n:
            raise ValueError(f"k must be an integer in [1, {self.n - 1}], got {k!r}")
        classes, codes = np.unique(y.astype(str), return_inverse=True)
        # kneighbors() without X leaves each point out of its own neighbourhood
        nn = NearestNeighbors(n_neighbors=int(k)).fit(self.coords)
        idx = nn.kneighbors(return_distance=False)
        votes = np.zeros((self.n, classes.size), dtype=np.int64)
        np.add.at(votes, (np.repeat(np.arange(self.n), k), codes[idx].ravel()), 1)
        predicted = votes.argmax(axis=1)
        return float(np.mean(predicted == codes))

    def trustworthiness(self, X: Any, k: int = 10) -> float:
        """How well the map keeps the spectra's neighbourhoods (:func:`sklearn.manifold.trustworthiness`).

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_pixels)
            The spectra that were embedded (same order).
        k : int, default 10
            Neighbourhood size; must be below ``n_spectra / 2``.

        Returns
        -------
        float in [0, 1]
            1 means that no spectrum has map neighbours that are far from it in spectrum space.
        """
        from sklearn.manifold import trustworthiness

        Xa = _as_matrix(X, "X")
        if Xa.shape[0] != self.n:
            raise ValueError(f"X must hold the {self.n} embedded spectra, got {Xa.shape[0]}")
        if not isinstance(k, (int, np.integer)) or not 1 <= k < self.n / 2:
            raise ValueError(f"k must be an integer in [1, {self.n / 2:g}), got {k!r}")
        return float(trustworthiness(Xa, self.coords, n_neighbors=int(k)))

    def plot(
        self,
        labels: Any,
        *,
        predicted: Any = None,
        misclassified: Any = None,
        explained: Any = None,
        simulated: bool = False,
        ax: Axes | None = None,
    ) -> Axes:
        """Plot the map; see :func:`agnlens.plot.embedding.plot_embedding` for the arguments."""
        from agnlens.plot.embedding import plot_embedding

        return plot_embedding(
            self.coords,
            labels,
            predicted=predicted,
            misclassified=misclassified,
            explained=explained,
            simulated=simulated,
            ax=ax,
        )


def load_embedding(path) -> tuple[Embedding, dict[str, np.ndarray]]:
    """Read a map written by :meth:`Embedding.save`.

    Returns
    -------
    embedding : Embedding
        Places new spectra as the saved one did (same reduced spectra, neighbour search and
        optimiser settings); ``fit_s`` is the original fit's.
    extra : dict of ndarray
        The ``extra`` arrays given to :meth:`Embedding.save`.

    Raises
    ------
    ValueError
        If the file is not such a map (its message names what is missing).
    """
    import json

    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PerplexityBasedNN
    from sklearn.decomposition import PCA

    with np.load(path, allow_pickle=False) as f:
        missing = {"coords", "reference", "Z", "settings"} - set(f.files)
        if missing:
            raise ValueError(f"{path}: not a saved t-SNE map (no {', '.join(sorted(missing))}); delete it and "
                             "let agnlens compute the map again")
        arrays = {k: f[k] for k in f.files}
    s = json.loads(str(arrays["settings"]))
    Z = arrays["Z"]
    pca = None
    if "pca_components" in arrays:
        pca = PCA(n_components=arrays["pca_components"].shape[0])
        pca.components_, pca.mean_ = arrays["pca_components"], arrays["pca_mean"]
        pca.explained_variance_ = arrays["pca_variance"]
        pca.n_components_, pca.n_features_in_ = pca.components_.shape
    affinities = PerplexityBasedNN(
        Z, perplexity=s["perplexity"], method="exact" if len(Z) <= EXACT_NEIGHBOURS_MAX else "annoy",
        n_jobs=s["n_jobs"], random_state=s["seed"], verbose=False,
    )
    ref = TSNEEmbedding(arrays["reference"], affinities, random_state=s["seed"], **s["params"])
    emb = Embedding(coords=arrays["coords"], perplexity=s["perplexity"], method=s["method"], seed=s["seed"],
                    n_jobs=s["n_jobs"], n_pca=s["n_pca"], fit_s=s["fit_s"], _pca=pca, _tsne=ref,
                    _n_features=s["n_features"])
    return emb, {k[len("extra_"):]: v for k, v in arrays.items() if k.startswith("extra_")}


def resolve_method(method: str, n: int) -> str:
    """The gradient method ``tsne`` uses for ``n`` spectra: "auto" is "bh" up to 10⁴ spectra, "fft" above."""
    if method not in ("auto", "bh", "fft"):
        raise ValueError(f"method must be 'auto', 'bh' or 'fft', got {method!r}")
    if method != "auto":
        return method
    return "fft" if n > FFT_THRESHOLD else "bh"


def tsne(
    X: Any,
    *,
    perplexity: float = 50,
    n_components: int = 2,
    pca_components: int | None = 50,
    method: str = "auto",
    seed: int = 0,
    n_jobs: int = -1,
) -> Embedding:
    """Embed spectra in a t-SNE map (PCA → openTSNE with PCA initialisation).

    Parameters
    ----------
    X : array-like of shape (n_spectra, n_pixels)
        Preprocessed spectra on a common grid (e.g. ``SpectrumSet.flux``).
    perplexity : float, default 50
        Effective number of neighbours (the study uses 50). Must be below ``(n_spectra - 1) / 3``.
    n_components : {1, 2}, default 2
        Map dimension.
    pca_components : int or None, default 50
        Reduce the spectra to this many principal components first (capped at the data's rank
        bound ``min(n_spectra, n_pixels)``); None uses the pixels directly.
    method : {"auto", "bh", "fft"}, default "auto"
        Negative-gradient approximation: Barnes-Hut, FFT interpolation, or "auto" (Barnes-Hut
        below 10⁴ spectra, FFT above).
    seed : int, default 0
        Seeds the PCA, the neighbour search and the optimisation. The same seed and data give a
        bitwise identical map, whatever ``n_jobs`` (up to :data:`EXACT_NEIGHBOURS_MAX` spectra;
        above it the approximate neighbour search also depends on ``n_jobs``).
    n_jobs : int, default -1
        Threads for openTSNE (-1: all cores). Speed only: the map is the same whatever the count
        (see above). On a machine busy with other work fewer threads can be faster (openTSNE
        synchronises its threads every iteration).

    Returns
    -------
    Embedding
    """
    from openTSNE import TSNE
    from sklearn.decomposition import PCA

    Xa = _as_matrix(X, "X")
    n, n_features = Xa.shape
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 spectra, got {n}")
    if not np.isfinite(perplexity) or perplexity <= 0 or 3 * perplexity >= n - 1:
        raise ValueError(
            f"perplexity must be positive and below (n_spectra - 1) / 3 = {(n - 1) / 3:g} for "
            f"{n} spectra, got {perplexity!r}; lower it (e.g. perplexity={max(1, (n - 1) // 4)})"
        )
    if n_components not in (1, 2):
        raise ValueError(f"n_components must be 1 or 2 (openTSNE's gradient methods), got {n_components!r}")
    if method not in ("auto", "bh", "fft"):
        raise ValueError(f"method must be 'auto', 'bh' or 'fft', got {method!r}")
    if pca_components is not None and (not isinstance(pca_components, (int, np.integer)) or pca_components < 1):
        raise ValueError(f"pca_components must be a positive integer or None, got {pca_components!r}")
    resolved = resolve_method(method, n)
    if not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive integer or -1 (all cores), got {n_jobs!r}")

    t0 = time.perf_counter()
    pca = None
    n_pca = None
    Z = Xa
    if pca_components is not None and pca_components < n_features:
        n_pca = int(min(pca_components, n, n_features))
        pca = PCA(n_components=n_pca, random_state=seed)
        Z = pca.fit_transform(Xa)
    logger.debug("t-SNE: %d spectra, %s, %s gradients", n, f"{n_pca} PCA components" if pca else "no PCA", resolved)
    model = TSNE(
        n_components=n_components,
        perplexity=perplexity,
        initialization="pca",
        negative_gradient_method=resolved,
        theta=BH_THETA,
        neighbors="exact" if n <= EXACT_NEIGHBOURS_MAX else "annoy",
        n_jobs=n_jobs,
        random_state=seed,
        verbose=False,
    )
    emb = model.fit(Z)
    fit_s = time.perf_counter() - t0
    logger.info("t-SNE map of %d spectra (%s) in %.1f s", n, _METHOD_NAMES[resolved], fit_s)
    return Embedding(
        coords=np.array(emb, dtype=np.float64),
        perplexity=float(perplexity),
        method=resolved,
        seed=int(seed),
        n_jobs=int(n_jobs),
        n_pca=n_pca,
        fit_s=fit_s,
        _pca=pca,
        _tsne=emb,
        _n_features=n_features,
    )
