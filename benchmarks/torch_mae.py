"""PyTorch reference implementation of the Masked Autoencoder (MAE).

He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners", written
from the paper's description. It serves as the reference peer for the
PyTorch-vs-JAX training-step benchmark and for parity tests that load the same
weights into the JAX model, so parameter names follow the official MAE / timm
state-dict layout exactly:

    cls_token                 [1, 1, D]
    pos_embed                 [1, 1+L, D]    fixed 2-D sin-cos (requires_grad=False)
    patch_embed.proj.{weight,bias}   Conv2d C -> D, kernel = stride = p
    blocks.{i}.norm1.*, blocks.{i}.attn.qkv.*, blocks.{i}.attn.proj.*,
    blocks.{i}.norm2.*, blocks.{i}.mlp.fc1.*, blocks.{i}.mlp.fc2.*
    norm.*
    decoder_embed.*           Linear D -> Dd
    mask_token                [1, 1, Dd]
    decoder_pos_embed         [1, 1+L, Dd]   fixed 2-D sin-cos (requires_grad=False)
    decoder_blocks.{i}.*      same block layout as the encoder
    decoder_norm.*
    decoder_pred.*            Linear Dd -> p*p*C

Shape notation: B batch, C channels, L = (H/p)*(W/p) patches, K kept patches,
D encoder width, Dd decoder width.
"""
from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn


def sincos_1d_pos_embed(dim: int, pos: np.ndarray) -> np.ndarray:
    """1-D sin-cos embedding of positions `pos` (any shape, flattened) -> [M, dim]."""
    assert dim % 2 == 0
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = pos.reshape(-1)[:, None] * omega[None, :]  # [M, dim/2]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d_pos_embed(dim: int, grid_size: int, cls_token: bool = True) -> np.ndarray:
    """2-D sin-cos embedding for a g x g grid -> [1+g*g, dim] (or [g*g, dim]).

    Follows the official release: `np.meshgrid(grid_w, grid_h)` ("w goes first",
    so grid[0] varies along the width), the first half of the channels encodes
    grid[0] and the second half grid[1]. The cls position is all zeros.
    """
    assert dim % 2 == 0
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # two [g, g] arrays
    emb_h = sincos_1d_pos_embed(dim // 2, grid[0])
    emb_w = sincos_1d_pos_embed(dim // 2, grid[1])
    emb = np.concatenate([emb_h, emb_w], axis=1)  # [g*g, dim]
    if cls_token:
        emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    return emb.astype(np.float32)


class PatchEmbed(nn.Module):
    """[B, C, H, W] -> [B, L, D] via a Conv2d with kernel = stride = p."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention, implemented with explicit matmuls (no SDPA).

    qkv output features are laid out as [3, heads, head_dim] (q, then k, then v).
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, N, head_dim]
        attn = (q @ k.transpose(-2, -1)) * self.scale  # [B, heads, N, N]
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x += attn(norm1(x)); x += mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaskedAutoencoderViT(nn.Module):
    """MAE with a ViT encoder and a lightweight ViT decoder.

    norm_pix_loss: normalise each target patch by its own mean / std.
    unbiased_var: the official release uses torch's default (unbiased) `var`
        for norm_pix_loss; set False for the population variance.
    """

    def __init__(self, img_size: int = 32, patch_size: int = 4, in_chans: int = 3,
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3,
                 decoder_embed_dim: int = 128, decoder_depth: int = 4,
                 decoder_num_heads: int = 4, mlp_ratio: float = 4.0,
                 norm_pix_loss: bool = True, unbiased_var: bool = True):
        super().__init__()
        self.patch_size, self.in_chans = patch_size, in_chans
        self.norm_pix_loss, self.unbiased_var = norm_pix_loss, unbiased_var
        grid = img_size // patch_size

        # Encoder.
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        L = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + L, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

        # Decoder.
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, 1 + L, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            [Block(decoder_embed_dim, decoder_num_heads, mlp_ratio) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans)

        self._init_weights(grid)

    def _init_weights(self, grid: int) -> None:
        self.pos_embed.data.copy_(
            torch.from_numpy(sincos_2d_pos_embed(self.pos_embed.shape[-1], grid)).unsqueeze(0))
        self.decoder_pos_embed.data.copy_(
            torch.from_numpy(sincos_2d_pos_embed(self.decoder_pos_embed.shape[-1], grid)).unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as a Linear [D, C*p*p]
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ---- patch helpers -------------------------------------------------
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, L, p*p*C], per-patch pixel order (p, q, c)."""
        p, c = self.patch_size, self.in_chans
        B, _, H, W = imgs.shape
        h, w = H // p, W // p
        x = imgs.reshape(B, c, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(B, h * w, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, p*p*C] -> [B, C, H, W]; inverse of `patchify` (square images)."""
        p, c = self.patch_size, self.in_chans
        B, L, _ = x.shape
        h = w = int(round(L ** 0.5))
        x = x.reshape(B, h, w, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(B, c, h * p, w * p)

    @staticmethod
    def random_masking(x: torch.Tensor, mask_ratio: float, noise: Optional[torch.Tensor] = None):
        """Per-sample random masking by argsort of noise (small noise is kept).

        x: [B, L, D] -> x_masked [B, K, D], mask [B, L] (0 kept, 1 removed, in
        original patch order), ids_restore [B, L]; K = int(L * (1 - mask_ratio)).
        """
        B, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(B, L, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))
        mask = torch.ones(B, L, device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)  # back to original patch order
        return x_masked, mask, ids_restore

    # ---- model ---------------------------------------------------------
    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float,
                        noise: Optional[torch.Tensor] = None):
        """[B, C, H, W] -> latent [B, 1+K, D], mask [B, L], ids_restore [B, L]."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent [B, 1+K, D], ids_restore [B, L] -> pred [B, L, p*p*C]."""
        x = self.decoder_embed(latent)  # [B, 1+K, Dd]
        B, _, Dd = x.shape
        L = ids_restore.shape[1]
        mask_tokens = self.mask_token.expand(B, L + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # [B, L, Dd], shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, Dd))
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_pred(self.decoder_norm(x))
        return x[:, 1:, :]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over removed patches only."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True, unbiased=self.unbiased_var)
            target = (target - mean) / (var + 1e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)  # [B, L]
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75,
                noise: Optional[torch.Tensor] = None):
        """imgs [B, C, H, W] -> (loss scalar, pred [B, L, p*p*C], mask [B, L])."""
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask


_NO_DECAY = ("cls_token", "mask_token", "pos_embed", "decoder_pos_embed")


def make_train_step(model: MaskedAutoencoderViT, lr: float = 1e-4, weight_decay: float = 0.05,
                    betas: Tuple[float, float] = (0.9, 0.95),
                    mask_ratio: float = 0.75,
                    autocast_dtype: Optional[torch.dtype] = None) -> Callable[[torch.Tensor], float]:
    """Return `step(imgs [B, C, H, W]) -> float loss` doing one AdamW update.

    autocast_dtype: run the forward pass (and so its backward) under `torch.autocast` in this
    dtype (e.g. torch.bfloat16); parameters and optimizer state stay float32.

    Weight decay applies only to weights with ndim >= 2; biases, norms, position
    embeddings, cls and mask tokens are not decayed. Fixed (requires_grad=False)
    position embeddings are not given to the optimizer at all.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name in _NO_DECAY else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)

    def step(imgs: torch.Tensor) -> float:
        model.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(imgs.device.type, dtype=autocast_dtype,
                            enabled=autocast_dtype is not None):
            loss, _, _ = model(imgs, mask_ratio=mask_ratio)
        loss.backward()
        opt.step()
        return loss.item()

    return step
