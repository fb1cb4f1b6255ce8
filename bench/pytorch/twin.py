"""The PyTorch twin of the project's small vision-language model, for `bench pytorch`.

Written for the benchmark, not a port of any other code: the same modules as the C# library (a CLIP vision
tower, VCE, LLaVA's projector, a LLaMA decoder, and the adapters LoRA, the LoRA mixtures and Dual-LoRA) with the
same state-dict keys, so it loads the weights the C# side saved to safetensors and checks them by name and
shape. It runs on Debian's python3-torch (PyTorch 1.13: no scaled_dot_product_attention, so attention is
written out) and talks to the benchmark over stdin and stdout, one JSON object a line:

  {"op": "load", "config": {...}, "weights": "model.safetensors", "threads": 2}
  {"op": "parity", "batch": "batch.safetensors", "out": "twin.safetensors"}   logits, loss, trainable grads
  {"op": "train", "batches": "batches.safetensors", "steps": N}              bare AdamW loop, ms a step
  {"op": "generate", "prompts": "prompts.safetensors", "new_tokens": N}     greedy with a KV cache
  {"op": "layer_load" | "layer_parity" | "layer_time", ...}                  one 7B-shaped decoder layer
  {"op": "peak", "sizes": [...], "threads": 2}                             GFLOP/s of square float32 products
  {"op": "exit"}

Each answer is one JSON line: {"ok": true, ...} or {"ok": false, "error": "..."}.
"""
import json
import math
import struct
import sys
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------------
# safetensors, read and written by hand (Debian has no python3-safetensors)

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool,
          "F16": torch.float16, "BF16": torch.bfloat16}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = memoryview(data)[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        raw = bytearray(body[start:end])
        flat = torch.frombuffer(raw, dtype=dtype) if end > start else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(entry["shape"]).clone()
    return tensors


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.numpy().tobytes() if t.numel() > 0 else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))

# ---------------------------------------------------------------------------------------------------------------
# adapters: the update added to a frozen linear layer's output


class Lora(nn.Module):
    def __init__(self, d_in, d_out, c):
        super().__init__()
        self.lora_A = nn.Linear(d_in, c["rank"], bias=False)
        self.lora_B = nn.Linear(c["rank"], d_out, bias=False)
        self.dropout, self.scaling = c["dropout"], c["scaling"]

    def forward(self, x):
        return self.lora_B(self.lora_A(F.dropout(x, self.dropout, self.training))) * self.scaling


class DualLora(nn.Module):
    """s = LN(A dropout(x)), t = ReLU(T x), delta = scaling * B (s * t); one product with [A; T] without dropout."""

    def __init__(self, d_in, d_out, c):
        super().__init__()
        self.rank = c["rank"]
        self.lora_A = nn.Linear(d_in, self.rank, bias=False)
        self.lora_T = nn.Linear(d_in, self.rank, bias=False)
        self.lora_B = nn.Linear(self.rank, d_out, bias=False)
        self.lora_ln = nn.LayerNorm(self.rank, eps=1e-5) if c["use_layer_norm"] else None
        self.use_relu, self.dropout, self.scaling = c["use_relu"], c["dropout"], c["scaling"]

    def forward(self, x):
        if self.dropout > 0 and self.training:
            skill = self.lora_A(F.dropout(x, self.dropout, True))
            task = self.lora_T(x)
        else:
            both = F.linear(x, torch.cat([self.lora_A.weight, self.lora_T.weight], 0))
            skill, task = both[..., :self.rank], both[..., self.rank:]
        if self.lora_ln is not None:
            skill = self.lora_ln(skill)
        if self.use_relu:
            task = F.relu(task)
        return self.lora_B(skill * task) * self.scaling


def routing_weights(logits, routing, top_k):
    if routing == "dense":
        return F.softmax(logits, -1)
    if routing == "rectified":
        return F.relu(logits)
    values, indices = logits.topk(top_k, dim=-1)
    return torch.zeros_like(logits).scatter(-1, indices, F.softmax(values, -1))


class FusedMoeLora(nn.Module):
    """The experts side by side: B (g * A x), g the routing weights repeated over each expert's ranks."""

    def __init__(self, d_in, d_out, c):
        super().__init__()
        self.ranks = torch.tensor(c["ranks"])
        self.lora_A = nn.Linear(d_in, sum(c["ranks"]), bias=False)
        self.lora_B = nn.Linear(sum(c["ranks"]), d_out, bias=False)
        self.lora_router = nn.Linear(d_in, len(c["ranks"]), bias=False)
        self.routing, self.top_k, self.dropout, self.scaling = c["routing"], c["top_k"], c["dropout"], c["scaling"]

    def forward(self, x):
        gates = routing_weights(self.lora_router(x), self.routing, self.top_k).repeat_interleave(self.ranks, dim=-1)
        return self.lora_B(self.lora_A(F.dropout(x, self.dropout, self.training)) * gates) * self.scaling


class LoopedMoeLora(nn.Module):
    """One A_i, B_i pair per expert, summed in a loop as LoRA-MoE implementations do: sum_i w_i B_i A_i x."""

    def __init__(self, d_in, d_out, c):
        super().__init__()
        self.lora_A = nn.ModuleList(nn.Linear(d_in, r, bias=False) for r in c["ranks"])
        self.lora_B = nn.ModuleList(nn.Linear(r, d_out, bias=False) for r in c["ranks"])
        self.lora_router = nn.Linear(d_in, len(c["ranks"]), bias=False)
        self.routing, self.top_k, self.dropout, self.scaling = c["routing"], c["top_k"], c["dropout"], c["scaling"]

    def forward(self, x):
        weights = routing_weights(self.lora_router(x), self.routing, self.top_k)
        dropped = F.dropout(x, self.dropout, self.training)
        total = None
        for i, (a, b) in enumerate(zip(self.lora_A, self.lora_B)):
            term = b(a(dropped)) * weights[..., i:i + 1]
            total = term if total is None else total + term
        return total * self.scaling


ADAPTERS = {"lora": Lora, "dual_lora": DualLora, "moe": FusedMoeLora, "moe_looped": LoopedMoeLora}


class AdaptableLinear(nn.Module):
    """A linear layer whose adapter's modules sit on the layer itself (q_proj.lora_A.weight), as in PEFT."""

    def __init__(self, d_in, d_out, bias=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.bias = nn.Parameter(torch.empty(d_out)) if bias else None
        self.adapter = None

    def attach(self, adapter):
        for name, module in adapter.named_children():
            self.add_module(name, module)
        # Kept out of the module tree, so its children are registered once, under this layer.
        object.__setattr__(self, "adapter", adapter)

    def forward(self, x):
        out = F.linear(x, self.weight, self.bias)
        if self.adapter is None:
            return out
        self.adapter.training = self.training
        return out + self.adapter(x)

# ---------------------------------------------------------------------------------------------------------------
# the vision tower (HF CLIPVisionModel's layout)


class ClipEmbeddings(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(v["hidden_size"]))
        self.patch_embedding = nn.Conv2d(v["num_channels"], v["hidden_size"], v["patch_size"], stride=v["patch_size"], bias=False)
        self.position_embedding = nn.Embedding(v["num_patches"] + 1, v["hidden_size"])

    def forward(self, pixels):
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(patches.shape[0], 1, -1)
        return torch.cat([cls, patches], 1) + self.position_embedding.weight.unsqueeze(0)


def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d) masked) v; mask True where a query may attend."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return F.softmax(scores, -1) @ v


class ClipAttention(nn.Module):
    def __init__(self, v):
        super().__init__()
        width = v["hidden_size"]
        self.heads = v["num_attention_heads"]
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x):
        b, n, w = x.shape

        def heads(t):
            return t.view(b, n, self.heads, w // self.heads).transpose(1, 2)
        out = attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)))
        return self.out_proj(out.transpose(1, 2).reshape(b, n, w))


class ClipMlp(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.fc1 = nn.Linear(v["hidden_size"], v["intermediate_size"])
        self.fc2 = nn.Linear(v["intermediate_size"], v["hidden_size"])
        self.quick_gelu = v["hidden_act"] == "quick_gelu"

    def forward(self, x):
        h = self.fc1(x)
        h = h * torch.sigmoid(1.702 * h) if self.quick_gelu else F.gelu(h)
        return self.fc2(h)


class ClipLayer(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(v["hidden_size"], eps=v["layer_norm_eps"])
        self.self_attn = ClipAttention(v)
        self.layer_norm2 = nn.LayerNorm(v["hidden_size"], eps=v["layer_norm_eps"])
        self.mlp = ClipMlp(v)

    def forward(self, x):
        h = x + self.self_attn(self.layer_norm1(x))
        return h + self.mlp(self.layer_norm2(h))


class ClipEncoder(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.layers = nn.ModuleList(ClipLayer(v) for _ in range(v["num_hidden_layers"]))


class ClipTransformer(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.embeddings = ClipEmbeddings(v)
        self.pre_layrnorm = nn.LayerNorm(v["hidden_size"], eps=v["layer_norm_eps"])
        self.encoder = ClipEncoder(v)
        self.post_layernorm = nn.LayerNorm(v["hidden_size"], eps=v["layer_norm_eps"])

    def hidden_states(self, pixels):
        states = [self.pre_layrnorm(self.embeddings(pixels))]
        for layer in self.encoder.layers:
            states.append(layer(states[-1]))
        return states


class ClipVisionModel(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.vision_model = ClipTransformer(v)

# ---------------------------------------------------------------------------------------------------------------
# VCE: multi-scale deformable cross-attention from the anchor map to several levels


class Vce(nn.Module):
    def __init__(self, channels, levels, anchor, c):
        super().__init__()
        self.heads, self.levels, self.points, self.anchor = c["heads"], levels, c["points"], anchor
        self.query_norm = nn.LayerNorm(channels, eps=1e-6)
        self.feature_norm = nn.LayerNorm(channels, eps=1e-6)
        self.output_norm = nn.LayerNorm(channels, eps=1e-6) if c["output_norm"] else None
        self.sampling_offsets = nn.Linear(channels, self.heads * levels * self.points * 2)
        self.attention_weights = nn.Linear(channels, self.heads * levels * self.points)
        self.value_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)

    def forward(self, maps, height, width):
        anchor = maps[self.anchor]
        b, n, c = anchor.shape
        hd = c // self.heads
        q = self.query_norm(anchor)
        offsets = self.sampling_offsets(q).view(b, n, self.heads, self.levels, self.points, 2)
        weights = F.softmax(self.attention_weights(q).view(b, n, self.heads, self.levels * self.points), -1) \
            .view(b, n, self.heads, self.levels, self.points)
        rows = (torch.arange(height, dtype=anchor.dtype) + 0.5) / height
        cols = (torch.arange(width, dtype=anchor.dtype) + 0.5) / width
        reference = torch.stack([cols.repeat(height), rows.repeat_interleave(width)], -1)
        scale = torch.tensor([width, height], dtype=anchor.dtype)
        locations = reference.view(1, n, 1, 1, 1, 2) + offsets / scale
        values = self.value_proj(self.feature_norm(torch.cat(maps, 1))).view(b, self.levels, height, width, self.heads, hd)
        grid = (2 * locations - 1).permute(0, 2, 3, 1, 4, 5)
        total = None
        for level in range(self.levels):
            value = values[:, level].permute(0, 3, 4, 1, 2).reshape(b * self.heads, hd, height, width)
            level_grid = grid[:, :, level].reshape(b * self.heads, n, self.points, 2)
            sampled = F.grid_sample(value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            level_weights = weights[:, :, :, level].permute(0, 2, 1, 3).reshape(b * self.heads, 1, n, self.points)
            term = (sampled * level_weights).sum(-1)
            total = term if total is None else total + term
        cue = self.output_proj(total.view(b, self.heads * hd, n).transpose(1, 2))
        enhanced = anchor + cue
        return self.output_norm(enhanced) if self.output_norm is not None else enhanced


class Connector(nn.Module):
    def __init__(self, v, language_width, vce, select_layer):
        super().__init__()
        self.select_layer = select_layer
        self.level_indices = vce["levels"] if vce else []
        self.vce = Vce(v["hidden_size"], len(self.level_indices), self.level_indices.index(vce["anchor_level"]), vce) if vce else None
        self.mm_projector = nn.Sequential(nn.Linear(v["hidden_size"], language_width), nn.GELU(), nn.Linear(language_width, language_width))

    def forward(self, states, grid):
        if self.vce is None:
            return self.mm_projector(states[self.select_layer][:, 1:])
        return self.mm_projector(self.vce([states[level][:, 1:] for level in self.level_indices], grid, grid))

# ---------------------------------------------------------------------------------------------------------------
# the decoder (HF LlamaForCausalLM's layout)


class RmsNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        wide = x if x.dtype == torch.float64 else x.float()
        return self.weight * (wide * torch.rsqrt(wide.square().mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def rotary(positions, head_dim, theta, dtype):
    inverse = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = positions.double().unsqueeze(-1) * inverse
    both = torch.cat([angles, angles], -1).unsqueeze(1)
    return both.cos().to(dtype), both.sin().to(dtype)


def rotate(x, cos, sin):
    first, second = x.chunk(2, -1)
    return x * cos + torch.cat([-second, first], -1) * sin


class LlamaAttention(nn.Module):
    def __init__(self, l):
        super().__init__()
        self.heads, self.kv_heads = l["num_attention_heads"], l["num_key_value_heads"]
        self.head_dim, width = l["hidden_size"] // self.heads, l["hidden_size"]
        self.q_proj = AdaptableLinear(width, width)
        self.k_proj = AdaptableLinear(width, self.kv_heads * self.head_dim)
        self.v_proj = AdaptableLinear(width, self.kv_heads * self.head_dim)
        self.o_proj = AdaptableLinear(width, width)

    def forward(self, x, cos, sin, mask, cache, index):
        b, n, w = x.shape

        def heads(t, count):
            return t.view(b, n, count, self.head_dim).transpose(1, 2)
        q = rotate(heads(self.q_proj(x), self.heads), cos, sin)
        k = rotate(heads(self.k_proj(x), self.kv_heads), cos, sin)
        v = heads(self.v_proj(x), self.kv_heads)
        if cache is not None:
            if index in cache:
                k, v = torch.cat([cache[index][0], k], 2), torch.cat([cache[index][1], v], 2)
            cache[index] = (k, v)
        group = self.heads // self.kv_heads
        if group > 1:
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        return self.o_proj(attention(q, k, v, mask).transpose(1, 2).reshape(b, n, w))


class LlamaMlp(nn.Module):
    def __init__(self, l):
        super().__init__()
        self.gate_proj = AdaptableLinear(l["hidden_size"], l["intermediate_size"])
        self.up_proj = AdaptableLinear(l["hidden_size"], l["intermediate_size"])
        self.down_proj = AdaptableLinear(l["intermediate_size"], l["hidden_size"])

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, l):
        super().__init__()
        self.input_layernorm = RmsNorm(l["hidden_size"], l["rms_norm_eps"])
        self.self_attn = LlamaAttention(l)
        self.post_attention_layernorm = RmsNorm(l["hidden_size"], l["rms_norm_eps"])
        self.mlp = LlamaMlp(l)

    def forward(self, x, cos, sin, mask, cache=None, index=0):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, index)
        return h + self.mlp(self.post_attention_layernorm(h))


def decoder_inputs(real, past, length, head_dim, theta, dtype):
    """Rotary cos/sin over real-token positions and the causal mask that also hides padding (as the C# decoder)."""
    total = past + length
    positions = (real.long().cumsum(1) - 1).clamp_min(0)[:, past:]
    cos, sin = rotary(positions, head_dim, theta, dtype)
    query = torch.arange(past, total).unsqueeze(1)
    key = torch.arange(total).unsqueeze(0)
    mask = key.le(query).view(1, 1, length, total) & real.view(real.shape[0], 1, 1, total)
    return cos, sin, mask | key.eq(query).view(1, 1, length, total)


class LlamaModel(nn.Module):
    def __init__(self, l):
        super().__init__()
        self.config = l
        self.embed_tokens = nn.Embedding(l["vocab_size"], l["hidden_size"])
        self.layers = nn.ModuleList(LlamaLayer(l) for _ in range(l["num_hidden_layers"]))
        self.norm = RmsNorm(l["hidden_size"], l["rms_norm_eps"])

    def forward(self, embeds, attention_mask, cache=None):
        b, n, _ = embeds.shape
        past = cache["length"] if cache is not None else 0
        real = attention_mask.bool()
        l = self.config
        cos, sin, mask = decoder_inputs(real, past, n, l["hidden_size"] // l["num_attention_heads"], l["rope_theta"], embeds.dtype)
        h = embeds
        for i, layer in enumerate(self.layers):
            h = layer(h, cos, sin, mask, cache, i)
        if cache is not None:
            cache["length"] = past + n
        return self.norm(h)


class LlamaForCausalLM(nn.Module):
    def __init__(self, l):
        super().__init__()
        self.model = LlamaModel(l)
        self.lm_head = nn.Linear(l["hidden_size"], l["vocab_size"], bias=False)

    def logits(self, embeds, attention_mask, cache=None):
        return self.lm_head(self.model(embeds, attention_mask, cache))

# ---------------------------------------------------------------------------------------------------------------
# the vision-language model

IMAGE_TOKEN, IGNORE = -200, -100


class LlavaModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        v, l = config["vision"], config["language"]
        self.grid = v["image_size"] // v["patch_size"]
        v = dict(v, num_patches=self.grid * self.grid)
        self.vision_tower = ClipVisionModel(v)
        self.connector = Connector(v, l["hidden_size"], config.get("vce"), config["select_layer"])
        self.language_model = LlamaForCausalLM(l)

    def prepare(self, ids, attention_mask, pixels, labels=None):
        """Text embeddings with each placeholder replaced by its image's tokens; mask and labels stretched to match."""
        image = self.connector(self.vision_tower.vision_model.hidden_states(pixels), self.grid)
        text = self.language_model.model.embed_tokens(ids.clamp_min(0))
        where = ids.eq(IMAGE_TOKEN).long().argmax(1).tolist()
        patches = image.shape[1]
        embeds, masks, stretched = [], [], []
        for b, at in enumerate(where):
            embeds.append(torch.cat([text[b, :at], image[b], text[b, at + 1:]], 0))
            masks.append(torch.cat([attention_mask[b, :at], torch.ones(patches, dtype=attention_mask.dtype), attention_mask[b, at + 1:]], 0))
            if labels is not None:
                stretched.append(torch.cat([labels[b, :at], torch.full((patches,), IGNORE, dtype=labels.dtype), labels[b, at + 1:]], 0))
        return torch.stack(embeds), torch.stack(masks), (torch.stack(stretched) if labels is not None else None)

    def forward(self, ids, attention_mask, pixels, labels):
        embeds, mask, labels = self.prepare(ids, attention_mask, pixels, labels)
        logits = self.language_model.logits(embeds, mask)
        vocab = logits.shape[-1]
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=IGNORE)
        return logits, loss

    def generate(self, ids, pixels, new_tokens):
        """Greedy decoding with a key/value cache from unpadded prompts of equal length: (prompts, new_tokens)."""
        with torch.no_grad():
            embeds, mask, _ = self.prepare(ids, torch.ones_like(ids), pixels)
            cache = {"length": 0}
            generated = []
            for _ in range(new_tokens):
                nxt = self.language_model.logits(embeds, mask, cache)[:, -1].argmax(-1)
                generated.append(nxt)
                mask = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype=mask.dtype)], 1)
                embeds = self.language_model.model.embed_tokens(nxt.unsqueeze(1))
            return torch.stack(generated, 1)


def inject(model, adapter, prefix="language_model."):
    """Attaches an adapter to every decoder q_proj and v_proj under the prefix; returns the adapted layers' paths."""
    paths = []
    for path, module in model.named_modules():
        if isinstance(module, AdaptableLinear) and path.startswith(prefix) and path.endswith(("self_attn.q_proj", "self_attn.v_proj")):
            module.attach(ADAPTERS[adapter["kind"]](module.weight.shape[1], module.weight.shape[0], adapter))
            paths.append(path)
    return paths


def load_strict(model, path):
    """Copies the saved tensors in by name; every key must be present on both sides with the same shape."""
    saved = read_safetensors(path)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    if missing or unexpected:
        raise ValueError(f"{path}: keys differ; missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in saved.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(f"{path}: '{name}' is {list(tensor.shape)}, the twin's {list(own[name].shape)}")
    model.load_state_dict(saved, strict=True)


def batches_of(path):
    saved = read_safetensors(path)
    count = len([k for k in saved if k.startswith("input_ids.")])
    return [(saved[f"input_ids.{i}"], saved[f"attention_mask.{i}"], saved[f"pixels.{i}"], saved[f"labels.{i}"]) for i in range(count)]

# ---------------------------------------------------------------------------------------------------------------
# the worker


class Twin:
    """The models the benchmark loaded, by name, each with its optimizer."""

    def __init__(self):
        self.models = {}
        self.layers = {}
        self.base_layer = None

    def load(self, request):
        torch.set_num_threads(request["threads"])
        config = request["config"]
        model = LlavaModel(config)
        adapted = inject(model, config["adapter"])
        load_strict(model, request["weights"])
        # Stage 2: the adapters and the connector train, with their own learning rates; the rest is frozen.
        groups = trainable_groups(model, adapted, {"connector": "connector."})
        rates = config["learning_rates"]
        optimizer = torch.optim.AdamW([{"params": groups[g], "lr": rates[g]} for g in groups], weight_decay=0.0)
        self.models[request["name"]] = {"model": model, "optimizer": optimizer, "step": 0}
        return {"parameters": sum(p.numel() for p in model.parameters()),
                "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}

    def parity(self, request):
        model = self.models[request["name"]]["model"]
        ids, mask, pixels, labels = batches_of(request["batch"])[0]
        model.eval()
        model.zero_grad(set_to_none=True)
        logits, loss = model(ids, mask, pixels, labels)
        loss.backward()
        out = {"logits": logits, "loss": loss.reshape(1)}
        out.update({"grad." + n: p.grad for n, p in model.named_parameters() if p.requires_grad})
        write_safetensors(request["out"], out)
        model.zero_grad(set_to_none=True)
        return {}

    def train(self, request):
        entry = self.models[request["name"]]
        model, optimizer = entry["model"], entry["optimizer"]
        batches = batches_of(request["batches"])
        model.train()
        start = time.perf_counter()
        for _ in range(request["steps"]):
            ids, mask, pixels, labels = batches[entry["step"] % len(batches)]
            optimizer.zero_grad(set_to_none=True)
            model(ids, mask, pixels, labels)[1].backward()
            optimizer.step()
            entry["step"] += 1
        return {"ms": (time.perf_counter() - start) * 1000 / request["steps"]}

    def generate(self, request):
        model = self.models[request["name"]]["model"]
        saved = read_safetensors(request["prompts"])
        model.eval()
        start = time.perf_counter()
        ids = model.generate(saved["input_ids"], saved["pixels"], request["new_tokens"])
        ms = (time.perf_counter() - start) * 1000
        if "out" in request:
            write_safetensors(request["out"], {"generated": ids})
        return {"ms": ms}

    def layer_load(self, request):
        """One decoder layer; its frozen weights are read once and shared by every adapter's copy."""
        torch.set_num_threads(request["threads"])
        layer = LlamaLayer(request["language"])
        adapted = inject(layer, request["adapter"], prefix="") if request.get("adapter") else []
        if self.base_layer is None:
            self.base_layer = read_safetensors(request["base"])
        saved = dict(self.base_layer)
        if "adapter_weights" in request:
            saved.update(read_safetensors(request["adapter_weights"]))
        own = layer.state_dict()
        if set(own) != set(saved):
            raise ValueError(f"layer keys differ: missing {sorted(set(own) - set(saved))[:5]}, unexpected {sorted(set(saved) - set(own))[:5]}")
        for name, module in layer.named_modules():
            for key, p in list(module.named_parameters(recurse=False)):
                full = f"{name}.{key}" if name else key
                if tuple(saved[full].shape) != tuple(p.shape):
                    raise ValueError(f"'{full}' is {list(saved[full].shape)}, the twin's {list(p.shape)}")
                setattr(module, key, nn.Parameter(saved[full], requires_grad=False))
        groups = trainable_groups(layer, adapted, {})
        n = request["tokens"]
        l = request["language"]
        cos, sin, mask = decoder_inputs(torch.ones(1, n, dtype=torch.bool), 0, n, l["hidden_size"] // l["num_attention_heads"], l["rope_theta"], torch.float32)
        optimizer = torch.optim.AdamW(groups["adapters"], lr=2e-4, weight_decay=0.0) if groups["adapters"] else None
        self.layers[request["name"]] = {"layer": layer, "optimizer": optimizer, "inputs": (cos, sin, mask)}
        return {"trainable": sum(p.numel() for p in layer.parameters() if p.requires_grad)}

    def layer_parity(self, request):
        entry = self.layers[request["name"]]
        layer = entry["layer"]
        x = read_safetensors(request["input"])["x"]
        layer.eval()
        layer.zero_grad(set_to_none=True)
        out = layer(x, *entry["inputs"])
        if any(p.requires_grad for p in layer.parameters()):
            out.square().mean().backward()
        result = {"output": out}
        result.update({"grad." + n: p.grad for n, p in layer.named_parameters() if p.requires_grad})
        write_safetensors(request["out"], result)
        layer.zero_grad(set_to_none=True)
        return {}

    def layer_time(self, request):
        """ms of one inference forward pass or one training step (forward, backward, AdamW) on the saved input."""
        entry = self.layers[request["name"]]
        layer, optimizer = entry["layer"], entry["optimizer"]
        x = read_safetensors(request["input"])["x"]
        start = time.perf_counter()
        if request["mode"] == "infer":
            layer.eval()
            with torch.no_grad():
                layer(x, *entry["inputs"])
        else:
            layer.train()
            optimizer.zero_grad(set_to_none=True)
            layer(x, *entry["inputs"]).square().mean().backward()
            optimizer.step()
        return {"ms": (time.perf_counter() - start) * 1000}


def matmul_peak(request):
    """GFLOP/s of square float32 products at each size: the median of 5 after a warm-up."""
    torch.set_num_threads(request["threads"])
    result = {}
    for n in request["sizes"]:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        times = []
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        result[str(n)] = 2.0 * n ** 3 / sorted(times)[2] / 1e9
    return {"gflops": result}


def trainable_groups(model, adapted, prefixes):
    """Marks what trains: the adapters' parameters and those under the given prefixes; the rest is frozen."""
    adapter_names = {f"{p}.{n}" if p else n for p in adapted for n, _ in model.get_submodule(p).named_parameters() if n.startswith("lora_")}
    groups = {"adapters": [], **{g: [] for g in prefixes}}
    for name, p in model.named_parameters():
        group = "adapters" if name in adapter_names else next((g for g, prefix in prefixes.items() if name.startswith(prefix)), None)
        p.requires_grad_(group is not None)
        if group:
            groups[group].append(p)
    return groups


def blas():
    """The BLAS library PyTorch loaded for a matrix product (Debian's build links the system's libblas.so.3)."""
    torch.randn(64, 64) @ torch.randn(64, 64)
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    found = sorted(p.rsplit("/", 1)[-1] for p in paths if "blas" in p.rsplit("/", 1)[-1] or "mkl" in p.rsplit("/", 1)[-1])
    return ", ".join(found) if found else "unknown"


def main():
    twin = Twin()
    ops = {"load": twin.load, "parity": twin.parity, "train": twin.train, "generate": twin.generate,
           "peak": matmul_peak, "layer_load": twin.layer_load, "layer_parity": twin.layer_parity, "layer_time": twin.layer_time}
    print(json.dumps({"ok": True, "torch": torch.__version__, "blas": blas()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "exit":
            break
        try:
            answer = {"ok": True, **ops[request["op"]](request)}
        except Exception as error:  # reported to the benchmark, which names the request
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
