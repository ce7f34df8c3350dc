#!/usr/bin/python3
"""The PyTorch side of bench/steps.lua: the same cases (nets, init, batch sizes, losses,
optimizers, float32), timed the same way, one JSON line on stdout.
  /usr/bin/python3 bench/steps_torch.py --case NAME [--threads 2] [--steps N] [--warmup W]
Each case mirrors the builder named in bench/steps.lua; the duel losses are the mean-reduced
forms written out here (csrc/ops/gan_loss.c's table)."""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def bce(x, target):  # BCE with logits against a constant 1 or 0, mean over elements
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, target))


def d_loss(kind, r, f):
    if kind == 'nonsaturating':
        return bce(r, 1.0) + bce(f, 0.0)
    if kind == 'lsgan':
        return ((r - 1) ** 2).mean() + (f ** 2).mean()
    if kind == 'wgan':
        return f.mean() - r.mean()
    raise ValueError(kind)


def g_loss(kind, f):
    if kind == 'nonsaturating':
        return bce(f, 1.0)
    if kind == 'lsgan':
        return ((f - 1) ** 2).mean()
    if kind == 'wgan':
        return -f.mean()
    raise ValueError(kind)


def adam(m, lr, b2=0.999):
    return torch.optim.Adam(m.parameters(), lr=lr, betas=(0.5, b2))


def images(n, c, s):
    return torch.rand(n, c, s, s) * 2 - 1


def init_normal(net):  # zoo.dcgan_init / models.init_normal
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1, 0.02)
            nn.init.zeros_(m.bias)
    return net


def mlp(sizes):  # zoo.mlp
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def standard(G, D, oG, oD, real, noise, kind):
    def step():
        fake = G(noise())
        oD.zero_grad()
        d_loss(kind, D(real), D(fake.detach())).backward()
        oD.step()
        oG.zero_grad()
        g_loss(kind, D(fake)).backward()
        oG.step()
    return step


def gradient_penalty(D, real, fake, lam):  # gan.gradient_penalty
    with torch.no_grad():
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)))
        x = real + alpha * (fake - real)
    x.requires_grad_(True)
    g, = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return lam * ((g.reshape(g.shape[0], -1).norm(dim=1) - 1) ** 2).mean()


def wgangp(G, D, oG, oD, real, noise, n_critic):
    def step():
        for _ in range(n_critic):
            with torch.no_grad():
                fake = G(noise())
            oD.zero_grad()
            (d_loss('wgan', D(real), D(fake)) + gradient_penalty(D, real, fake, 10)).backward()
            oD.step()
        oG.zero_grad()
        g_loss('wgan', D(G(noise()))).backward()
        oG.step()
    return step


class View(nn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


def toy(batch):
    def make():
        G, D = mlp([256, 128, 128, 2]), mlp([2, 128, 128, 1])
        return standard(G, D, adam(G, 1e-4), adam(D, 1e-4), torch.randn(batch, 2),
                        lambda: torch.randn(batch, 256), 'nonsaturating')
    return make


def wgangp_toy2d():
    G, D = mlp([256, 128, 128, 2]), mlp([2, 128, 128, 1])
    return wgangp(G, D, adam(G, 1e-4, 0.9), adam(D, 1e-4, 0.9), torch.randn(512, 2),
                  lambda: torch.randn(512, 256), 5)


def dcgan28():
    G = init_normal(nn.Sequential(View(100, 1, 1), nn.ConvTranspose2d(100, 256, 7, bias=False),
        nn.BatchNorm2d(256), nn.ReLU(), nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False),
        nn.BatchNorm2d(128), nn.ReLU(), nn.ConvTranspose2d(128, 1, 4, 2, 1, bias=False), nn.Tanh()))
    D = init_normal(nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 7, bias=False), nn.Flatten()))
    return standard(G, D, adam(G, 2e-4), adam(D, 2e-4), images(64, 1, 28),
                    lambda: torch.randn(64, 100), 'nonsaturating')


def sample_latent(n):  # gan.sample_latent{n = n}: 62 U(-1,1), one-hot Cat(10), 2 U(-1,1)
    cat = torch.randint(0, 10, (n,))
    cont = torch.rand(n, 2) * 2 - 1
    z = torch.cat([torch.rand(n, 62) * 2 - 1, F.one_hot(cat, 10).float(), cont], 1)
    return z, cat, cont


def infogan28():
    G = init_normal(nn.Sequential(nn.Linear(74, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, 128 * 7 * 7), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(), View(128, 7, 7),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh()))
    body = init_normal(nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.1),
        nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.1), nn.Flatten(),
        nn.Linear(128 * 7 * 7, 1024), nn.BatchNorm1d(1024), nn.LeakyReLU(0.1)))
    dhead = init_normal(nn.Linear(1024, 1))
    qhead = init_normal(nn.Sequential(nn.Linear(1024, 128), nn.BatchNorm1d(128),
                                      nn.LeakyReLU(0.1), nn.Linear(128, 12)))
    oG, oD = adam(G, 1e-3), adam(nn.ModuleList([body, dhead, qhead]), 2e-4)
    real = images(64, 1, 28)
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def mi(h, cat, cont):  # info_categorical + info_gaussian (std 1)
        q = qhead(h)
        return (F.cross_entropy(q[:, :10], cat)
                + ((cont - q[:, 10:12]) ** 2 * 0.5).sum() / q.shape[0] + 2 * half_log_2pi)

    def step():
        z, cat, cont = sample_latent(64)
        fake = G(z)
        hf = body(fake.detach())
        oD.zero_grad()
        (d_loss('nonsaturating', dhead(body(real)), dhead(hf)) + mi(hf, cat, cont)).backward()
        oD.step()
        oG.zero_grad()
        h = body(fake)
        (g_loss('nonsaturating', dhead(h)) + mi(h, cat, cont)).backward()
        oG.step()
    return step


def generator64(nz=100, ngf=64):  # zoo.G64
    L, c = [View(nz, 1, 1), nn.ConvTranspose2d(nz, ngf * 8, 4, bias=False)], ngf * 8
    for i in range(4):
        o = 3 if i == 3 else c // 2
        L += [nn.BatchNorm2d(c), nn.ReLU(), nn.ConvTranspose2d(c, o, 4, 2, 1, bias=False)]
        c = o
    return init_normal(nn.Sequential(*L, nn.Tanh()))


def discriminator64(ndf=64, bn=True):  # zoo.D64
    L, c = [], 3
    for i in range(4):
        o = ndf * 2 ** i
        L.append(nn.Conv2d(c, o, 4, 2, 1, bias=not bn))
        if bn and i > 0:
            L.append(nn.BatchNorm2d(o))
        L.append(nn.LeakyReLU(0.2))
        c = o
    L += [nn.Conv2d(c, 1, 4, bias=not bn), nn.Flatten()]
    return init_normal(nn.Sequential(*L))


def dcgan64():
    G, D = generator64(), discriminator64()
    return standard(G, D, adam(G, 2e-4), adam(D, 2e-4), images(64, 3, 64),
                    lambda: torch.randn(64, 100), 'nonsaturating')


def wgangp64():
    G, D = generator64(), discriminator64(bn=False)
    return wgangp(G, D, adam(G, 1e-4, 0.9), adam(D, 1e-4, 0.9), images(64, 3, 64),
                  lambda: torch.randn(64, 100), 5)


def norm_layer(kind, c):
    return nn.BatchNorm2d(c) if kind == 'batch' else nn.InstanceNorm2d(c)


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c),
                                  nn.ReLU(), nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3),
                                  nn.InstanceNorm2d(c))

    def forward(self, x):
        return x + self.body(x)


def resnet_generator(ngf=64, n_blocks=6):  # models.resnet_generator
    L = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU()]
    for k in range(2):
        c = ngf * 2 ** k
        L += [nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU()]
    L += [ResBlock(4 * ngf) for _ in range(n_blocks)]
    for k in (2, 1):
        c = ngf * 2 ** k
        L += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c // 2),
              nn.ReLU()]
    L += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return init_normal(nn.Sequential(*L))


def patchgan(in_c=3, ndf=64, n=3, norm='instance'):  # models.patchgan
    L, mult = [nn.Conv2d(in_c, ndf, 4, 2, 1), nn.LeakyReLU(0.2)], 1
    for k in range(1, n + 1):
        prev, mult = mult, min(2 ** k, 8)
        L += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if k < n else 1, 1, bias=norm != 'batch'),
              norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2)]
    L.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
    return init_normal(nn.Sequential(*L))


def set_grad(m, on):
    for p in m.parameters():
        p.requires_grad_(on)


def cyclegan128():
    G_A, G_B, D_A, D_B = resnet_generator(), resnet_generator(), patchgan(), patchgan()
    oGA, oGB, oDA, oDB = (adam(m, 2e-4) for m in (G_A, G_B, D_A, D_B))
    A, B = images(1, 3, 128), images(1, 3, 128)

    def step():
        set_grad(D_A, False); set_grad(D_B, False)
        fake_B, fake_A = G_A(A), G_B(B)
        g = (g_loss('lsgan', D_A(fake_B)) + g_loss('lsgan', D_B(fake_A))
             + F.l1_loss(G_B(fake_B), A) * 10 + F.l1_loss(G_A(fake_A), B) * 10
             + F.l1_loss(G_A(B), B) * 5 + F.l1_loss(G_B(A), A) * 5)
        oGA.zero_grad(); oGB.zero_grad(); g.backward(); oGA.step(); oGB.step()
        set_grad(D_A, True); set_grad(D_B, True)
        d = (d_loss('lsgan', D_A(B), D_A(fake_B.detach())) * 0.5
             + d_loss('lsgan', D_B(A), D_B(fake_A.detach())) * 0.5)
        oDA.zero_grad(); oDB.zero_grad(); d.backward(); oDA.step(); oDB.step()
    return step


class UnetLevel(nn.Module):  # models.unet's level
    def __init__(self, outer_c, inner_c, in_c=None, out_c=None, sub=None, innermost=False,
                 outermost=False, dropout=False):
        super().__init__()
        conv = nn.Conv2d(in_c or outer_c, inner_c, 4, 2, 1, bias=False)
        self.down = conv if outermost else nn.Sequential(
            nn.LeakyReLU(0.2), conv, nn.Identity() if innermost else nn.BatchNorm2d(inner_c))
        self.sub = sub
        up_in = inner_c if innermost else 2 * inner_c
        up = [nn.ReLU(), nn.ConvTranspose2d(up_in, out_c or outer_c, 4, 2, 1, bias=outermost)]
        if outermost:
            up.append(nn.Tanh())
        else:
            up.append(nn.BatchNorm2d(outer_c))
            if dropout:
                up.append(nn.Dropout(0.5))
        self.up = nn.Sequential(*up)
        self.outermost = outermost

    def forward(self, x):
        y = self.down(x)
        if self.sub is not None:
            y = self.sub(y)
        y = self.up(y)
        return y if self.outermost else torch.cat([x, y], 1)


def unet(ngf=64, n=7):
    width = lambda level: ngf * min(2 ** (level - 1), 8)
    net = None
    for level in range(n, 0, -1):
        net = UnetLevel(width(level - 1) if level > 1 else None, width(level),
                        in_c=3 if level == 1 else None, out_c=3 if level == 1 else None, sub=net,
                        innermost=level == n, outermost=level == 1,
                        dropout=level > 1 and level >= n - 2)
    return init_normal(net)


def pix2pix128(batch):
    def make():
        G, D = unet(), patchgan(6, norm='batch')
        oG, oD = adam(G, 2e-4), adam(D, 2e-4)
        A, B = images(batch, 3, 128), images(batch, 3, 128)

        def step():
            fake = G(A)
            oD.zero_grad()
            (d_loss('nonsaturating', D(torch.cat([A, B], 1)),
                    D(torch.cat([A, fake.detach()], 1))) * 0.5).backward()
            oD.step()
            set_grad(D, False)
            oG.zero_grad()
            (g_loss('nonsaturating', D(torch.cat([A, fake], 1))) + F.l1_loss(fake, B) * 100).backward()
            oG.step()
            set_grad(D, True)
        return step
    return make


# name -> (make, steps, warmup): the same counts as bench/steps.lua
CASES = {
    'toy2d': (toy(512), 100, 10), 'toy2d_b64': (toy(64), 500, 50),
    'wgangp_toy2d': (wgangp_toy2d, 20, 3), 'dcgan28': (dcgan28, 6, 1),
    'infogan28': (infogan28, 6, 1), 'dcgan64': (dcgan64, 1, 1), 'wgangp64': (wgangp64, 1, 1),
    'cyclegan128': (cyclegan128, 1, 1), 'pix2pix128': (pix2pix128(1), 4, 1),
    'pix2pix128b16': (pix2pix128(16), 1, 1),
}


def peak_rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--case', required=True, choices=sorted(CASES))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--steps', type=int)
    ap.add_argument('--warmup', type=int)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--budget', type=float, default=20)  # as steps.lua: stop early past S s
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    make, n, warm = CASES[a.case]
    n = a.steps if a.steps is not None else n
    warm = a.warmup if a.warmup is not None else warm
    step = make()
    w0 = time.perf_counter()
    for _ in range(warm):
        step()
        if time.perf_counter() - w0 > a.budget / 2:
            break
    t, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        t.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        if sum(t) / 1e3 > a.budget and len(t) >= 2:
            break
    n = len(t)
    t.sort()
    cpu.sort()
    median = lambda v: v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    med = median(t)
    print(json.dumps({'case': a.case, 'ms_median': round(med, 3), 'ms_min': round(t[0], 3),
                      'ms_max': round(t[-1], 3), 'steps': n, 'peak_rss_mb': round(peak_rss_mb(), 1),
                      'cpu_ms_median': round(median(cpu), 3)}))


if __name__ == '__main__':
    main()
