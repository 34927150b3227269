"""Principal components of a sample of flat vectors (a linear model fitted in closed form on the
host): the PCA floor of the probes (`baseline="pca"`) and MAE's PCA target (`mae.target="pca"`)."""
import numpy as np


def fit(points, dims):
  """[N, P] -> {"mean" [P], "components" [P, dims]}: the top `dims` principal directions,
  largest variance first, each signed so that its largest-magnitude entry is positive."""
  x = np.asarray(points, np.float64)
  mean = x.mean(axis=0)
  variances, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False))
  top = vectors[:, np.argsort(variances)[::-1][:dims]]
  top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(dims)])
  return {"mean": mean.astype(np.float32), "components": top.astype(np.float32)}
