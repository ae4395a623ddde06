"""The audio aligner: segment position embedding (eq. 3-4) + window-level Q-Former (eq. 5).

For each 30 s segment j of an audio item, the encoder states Z_j (n_ctx x d_audio) get the
segment embedding Z_j^Pos added to every frame. The states are cut into windows of
``audio_window_frames`` frames (0.2 s = 10 frames); in each window ``q`` learned queries run
through BERT-style layers (self-attention among the queries, cross-attention to the window's
frames, feed-forward; post-LayerNorm like BERT) and a linear projection maps them to the LLM
width. A segment thus yields ``windows x q`` tokens (150 for 0.2 s windows, q = 1), in time order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vs2_plugin.modeling.whisper_encoder import FeedForward, whisper_sinusoids


class Attention(nn.Module):
    """Multi-head attention; keys/values may come from a different width (cross-attention)."""

    def __init__(self, hidden: int, heads: int, kv_width: int | None = None):
        super().__init__()
        kv_width = kv_width or hidden
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_width, hidden)
        self.value = nn.Linear(kv_width, hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        batch, length, hidden = x.shape

        def heads(t):
            return t.view(batch, t.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(context)), heads(self.value(context)))
        return self.out(out.transpose(1, 2).reshape(batch, length, hidden))


class QFormerLayer(nn.Module):
    """BERT layer with cross-attention: post-LN residual blocks."""

    def __init__(self, hidden: int, heads: int, intermediate: int, encoder_width: int):
        super().__init__()
        self.self_attn = Attention(hidden, heads)
        self.self_attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.cross_attn = Attention(hidden, heads, kv_width=encoder_width)
        self.cross_attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn = FeedForward(hidden, intermediate)
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, queries: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        queries = self.self_attn_norm(queries + self.self_attn(queries))
        queries = self.cross_attn_norm(queries + self.cross_attn(queries, frames))
        return self.ffn_norm(queries + self.ffn(queries))


class SegmentPositionEmbedding(nn.Module):
    """Z_j^Pos of eq. (3): a vector per segment number j, added to every frame of segment j.

    ``kind="learned"``: an embedding matrix (the paper). ``kind="sinusoidal"``: fixed sinusoids
    of j (the public video-SALMONN 2 code); kept as a buffer so checkpoints are self-contained.
    """

    def __init__(self, max_segments: int, width: int, kind: str = "learned"):
        super().__init__()
        self.kind = kind
        self.max_segments = max_segments
        if kind == "learned":
            self.embedding = nn.Embedding(max_segments, width)
        else:
            self.register_buffer("table", whisper_sinusoids(max_segments, width))

    def forward(self, segment_index: torch.Tensor) -> torch.Tensor:
        if segment_index.numel() and int(segment_index.max()) >= self.max_segments:
            raise ValueError(
                f"audio item has {int(segment_index.max()) + 1} segments but max_audio_segments is "
                f"{self.max_segments}; raise max_audio_segments in the model config"
            )
        if self.kind == "learned":
            return self.embedding(segment_index)
        return self.table[segment_index]


class AudioMarkerOffsets(nn.Module):
    """Trainable offsets added to the input embeddings of ``<|audio_start|>`` and ``<|audio_end|>``.

    The markers are new tokens whose embedding rows only get a build-time init. Keeping their
    trainable part in the aligner trains them wherever the aligner trains (alignment stage;
    ``modules_to_save`` in SFT / DPO) without making the whole embedding matrix trainable.
    ``delta`` is zero at init, so a checkpoint saved before it existed behaves as before. A
    module with its own forward (not a bare parameter read by the model) so that DeepSpeed
    ZeRO-3 gathers ``delta`` when it is used.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(2, hidden))

    def forward(self, embeds: torch.Tensor, input_ids: torch.Tensor, marker_ids: tuple[int, int]) -> torch.Tensor:
        delta = self.delta.to(embeds.device, embeds.dtype)
        for row, token_id in enumerate(marker_ids):
            embeds = embeds + (input_ids == token_id).unsqueeze(-1).to(embeds.dtype) * delta[row]
        return embeds


class WindowQFormerAligner(nn.Module):
    """Aligner_Audio: (S, n_ctx, d_audio) encoder states of S segments -> (S, T, llm_hidden)."""

    def __init__(self, config):
        super().__init__()
        audio_width = config.audio_config["n_audio_state"]
        hidden = config.qformer_hidden
        self.window_frames = config.audio_window_frames
        self.queries_per_window = config.audio_queries_per_window
        self.segment_position = SegmentPositionEmbedding(
            config.max_audio_segments, audio_width, config.segment_position
        )
        self.frame_norm = nn.LayerNorm(audio_width)
        self.query_tokens = nn.Parameter(torch.zeros(1, config.audio_queries_per_window, hidden))
        self.query_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(
            QFormerLayer(hidden, config.qformer_heads, config.qformer_intermediate, audio_width)
            for _ in range(config.qformer_layers)
        )
        self.projection = nn.Linear(hidden, config.text_config.hidden_size)
        self.markers = AudioMarkerOffsets(config.text_config.hidden_size)

    def forward(self, encoder_states: torch.Tensor, segment_index: torch.Tensor) -> torch.Tensor:
        """``segment_index[s]`` = number of segment s within its audio item (0, 1, ...)."""
        segments, frames, width = encoder_states.shape
        if frames % self.window_frames:
            raise ValueError(f"{frames} encoder frames are not a whole number of {self.window_frames}-frame windows")
        position = self.segment_position(segment_index).to(encoder_states.dtype)
        states = self.frame_norm(encoder_states + position[:, None, :])  # eq. (3); concat (4) is implicit
        windows = frames // self.window_frames
        states = states.reshape(segments * windows, self.window_frames, width)
        queries = self.query_norm(self.query_tokens.to(states.dtype)).expand(segments * windows, -1, -1)
        for layer in self.layers:
            queries = layer(queries, states)
        tokens = queries.reshape(segments, windows * self.queries_per_window, -1)
        return self.projection(tokens)
