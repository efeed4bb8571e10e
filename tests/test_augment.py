"""facelab.nn.augment: flips keep maps aligned, erasing covers the asked area, seeds reproduce."""
import torch

from facelab.nn.augment import flip_erase, random_erase, random_hflip


def test_hflip_mirrors_image_and_its_maps_together():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    maps = x[:, 0].clone()                                       # a per-image map: same width axis
    fx, fm = random_hflip(x, maps, p=0.5)
    for i in range(2):
        flipped = torch.equal(fx[i], x[i].flip(-1))
        assert flipped or torch.equal(fx[i], x[i])
        assert torch.equal(fm[i], fx[i, 0])                      # the map went with its image
    assert torch.equal(random_hflip(x, p=1.0), x.flip(-1)) and torch.equal(random_hflip(x, p=0.0), x)


def test_erase_area_and_probability():
    torch.manual_seed(1)
    x = torch.ones(400, 1, 32, 32)
    out = random_erase(x, p=1.0, scale=(0.1, 0.1), ratio=(1.0, 1.0))
    frac = 1 - out.mean((1, 2, 3))
    assert abs(frac.mean().item() - 0.1) < 0.02 and (frac > 0).all()
    none = random_erase(x, p=0.0)
    assert torch.equal(none, x)
    half = random_erase(x, p=0.5)
    assert 0.4 < ((1 - half.mean((1, 2, 3))) > 0).float().mean().item() < 0.6


def test_flip_erase_is_seeded():
    x = torch.rand(8, 3, 16, 16)
    torch.manual_seed(3)
    a = flip_erase(x)
    torch.manual_seed(3)
    b = flip_erase(x)
    assert torch.equal(a, b) and not torch.equal(a, x)
