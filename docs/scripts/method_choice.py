"""Measurements behind fit-image's default method (docs/real_images.md, "The default method").

python docs/scripts/method_choice.py synthetic   # bicubic vs Lanczos-3 on synthetic labyrinths
python docs/scripts/method_choice.py selfval     # self-validation vs the truth on the real images
python docs/scripts/method_choice.py noise       # spectral-floor noise estimate, clean and noisy LR
python docs/scripts/method_choice.py weight IMAGE RATIO SIGMA MU,MU,...  # prior r per data weight
python docs/scripts/method_choice.py blend IMAGE:RATIO ...  # prior, Lanczos-3 and their mean
"""

import sys
from pathlib import Path

import numpy as np

from magsr_tf.evaluation.metrics import pearson
from magsr_tf.io.pictures import images_to_spins
from magsr_tf.jobs.fit_image import central_crop
from magsr_tf.ops.degradation import degrade, parse_degradation
from magsr_tf.ops.interpolation import upsample
from magsr_tf.ops.lanczos import lanczos
from magsr_tf.priors.image_prior import sign_changes, synthetic_domains

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
DEG = parse_degradation("gaussian:1")


def both(lr, r):
    return upsample(lr, r, "bicubic", True, "reflect"), lanczos(lr, r)


def synthetic():
    cells = (
        (2, (3, 4, 5, 6)),
        (4, (6, 7, 8, 9, 10, 12)),
        (8, (10, 12, 14, 16, 17, 18, 19, 20, 24)),
    )
    for r, periods in cells:
        for period in periods:
            for wall in (1.0, 2.5):
                for seed in (0, 1):
                    nat = synthetic_domains((256, 256), period, wall, seed)[..., None]
                    lr = degrade(nat.astype(np.float32), r, DEG, "reflect")
                    b, lz = (pearson(nat, x) for x in both(lr, r))
                    share = sign_changes(lr[..., 0])
                    print(
                        f"x{r} period {period} wall {wall} seed {seed}: sign changes "
                        f"{share:.3f} bicubic {b:.4f} lanczos {lz:.4f} l-b {lz - b:+.4f}"
                    )


def selfval():
    for path in sorted(REAL.glob("*.png")):
        nat = central_crop(images_to_spins([path]), (512, 512))
        for r in (4, 8):
            lr = degrade(nat, r, DEG, "reflect")
            b, lz = (pearson(nat, x) for x in both(lr, r))
            out = []
            for f, s in ((2, 1.0), (2, 2 / r), (4, 1.0), (4, 4 / r)):
                llr = degrade(lr, f, parse_degradation(f"gaussian:{s}"), "reflect")
                sb, sl = (pearson(lr, x) for x in both(llr, f))
                out.append(f"factor {f} sigma {s:.2f}: l-b {sl - sb:+.4f}")
            print(f"{path.stem} x{r}: truth l-b {lz - b:+.4f} | " + " | ".join(out))


def noise():
    from magsr_tf.ops.noise import add_noise, spectral_noise

    for path in sorted(REAL.glob("*.png")):
        nat = central_crop(images_to_spins([path]), (512, 512))
        for r in (2, 4, 8):
            lr = degrade(nat, r, DEG, "reflect")
            out = []
            for sigma in (0.0, 0.02, 0.05, 0.1):
                y = add_noise(lr, sigma, np.random.default_rng(1)) if sigma else lr
                out.append(f"sigma {sigma}: {spectral_noise(y[None])[0]:.4f}")
            print(f"{path.stem} x{r}: " + " | ".join(out))


def weight(image, ratio, sigma, mus):
    from magsr_tf.ops.noise import add_noise
    from magsr_tf.priors.image_prior import PriorConfig, reconstruct

    r = int(ratio)
    nat = central_crop(images_to_spins([Path(image)]), (512, 512))
    lr = degrade(nat, r, DEG, "reflect")
    if float(sigma):
        lr = add_noise(lr, float(sigma), np.random.default_rng(0))
    b, lz = (pearson(nat, x) for x in both(lr, r))
    print(f"{Path(image).stem} x{r} noise {sigma}: bicubic {b:.4f} lanczos {lz:.4f}")
    for mu in (float(m) for m in mus.split(",")):
        res = reconstruct(lr, r, DEG, PriorConfig("anisotropy", consistency=mu))
        print(f"  mu {mu}: prior r {pearson(nat, res.image):.4f}, {res.iterations} iterations")


def blend(*specs):
    from magsr_tf.priors.image_prior import PriorConfig, reconstruct

    for spec in specs:
        image, r = spec.rsplit(":", 1)
        r = int(r)
        nat = central_crop(images_to_spins([Path(image)]), (512, 512))
        lr = degrade(nat, r, DEG, "reflect")
        b, lz = both(lr, r)
        prior = reconstruct(lr, r, DEG, PriorConfig("anisotropy", unresolved="prior")).image
        scores = [pearson(nat, x) for x in (b, lz, prior, (prior + lz) / 2)]
        print(
            f"{Path(image).stem} x{r}: bicubic {scores[0]:.4f} lanczos {scores[1]:.4f} "
            f"prior {scores[2]:.4f} mean of prior and lanczos {scores[3]:.4f}"
        )


if __name__ == "__main__":
    modes = {
        "synthetic": synthetic,
        "selfval": selfval,
        "noise": noise,
        "weight": weight,
        "blend": blend,
    }
    modes[sys.argv[1]](*sys.argv[2:])
