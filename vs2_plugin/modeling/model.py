"""video-SALMONN 2 on top of transformers' Qwen2.5-VL (paper sec. 3.1, eq. 1-9).

The visual branch and the LLM are Qwen2.5-VL's, unchanged. Added: ``audio_encoder`` (Whisper,
eq. 2) and ``audio_aligner`` (segment position embedding + window-level Q-Former, eq. 3-5).
Audio embeddings are scattered, in order, into the ``<|audio_pad|>`` positions of the input;
video embeddings still go into ``<|video_pad|>`` positions (Qwen's own masked scatter), so the
interleaving of eq. (6-8) is decided entirely by where the data side puts the tokens.

Extra forward inputs (the contract with the data collator):

* ``audio_features`` (S, n_mels, 3000) float: Whisper log-mel of every 30 s segment of every
  audio item in the batch, items in order, segments in order.
* ``audio_segment_counts`` (A,) long: segments of each audio item.
* ``audio_token_counts`` (A,) long: tokens kept for each item (its first K aligner outputs);
  equals that item's number of ``<|audio_pad|>`` tokens in ``input_ids``.
"""

from __future__ import annotations

import torch
from transformers import initialization as init
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLModel,
    Qwen2_5_VLPreTrainedModel,
)

from vs2_plugin.modeling.config import VideoSalmonn2Config
from vs2_plugin.modeling.frozen_cache import FrozenOutputCache
from vs2_plugin.modeling.qformer import AudioMarkerOffsets, SegmentPositionEmbedding, WindowQFormerAligner
from vs2_plugin.modeling.rope import RopeTokens, interleaved_rope_index
from vs2_plugin.modeling.whisper_encoder import WhisperAudioEncoder, whisper_sinusoids

AUDIO_INPUT_KEYS = ("audio_features", "audio_segment_counts", "audio_token_counts")


class VideoSalmonn2PreTrainedModel(Qwen2_5_VLPreTrainedModel):
    config: VideoSalmonn2Config
    config_class = VideoSalmonn2Config
    _no_split_modules = ["Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock", "WhisperEncoderBlock"]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, WhisperAudioEncoder):
            init.copy_(module.positional_embedding, whisper_sinusoids(*module.positional_embedding.shape))
        elif isinstance(module, SegmentPositionEmbedding) and module.kind == "sinusoidal":
            init.copy_(module.table, whisper_sinusoids(*module.table.shape))
        elif isinstance(module, WindowQFormerAligner):
            init.normal_(module.query_tokens, mean=0.0, std=0.02)
        elif isinstance(module, AudioMarkerOffsets):
            init.zeros_(module.delta)


class VideoSalmonn2Model(VideoSalmonn2PreTrainedModel, Qwen2_5_VLModel):
    def __init__(self, config: VideoSalmonn2Config):
        Qwen2_5_VLModel.__init__(self, config)
        self.audio_encoder = WhisperAudioEncoder.from_audio_config(config.audio_config)
        self.audio_aligner = WindowQFormerAligner(config)
        # not a module: no weights, nothing saved; states of the frozen encoder by segment content
        mb = config.audio_encoder_cache_mb
        self.audio_encoder_cache = FrozenOutputCache(mb * 2**20) if mb else None
        self.post_init()

    # ----- audio branch -------------------------------------------------------------------
    def get_audio_features(
        self,
        audio_features: torch.Tensor,
        audio_segment_counts: torch.Tensor,
        audio_token_counts: torch.Tensor,
    ) -> torch.Tensor:
        """Audio tokens of all items, concatenated: (sum of audio_token_counts, LLM hidden)."""
        segment_counts = [int(c) for c in audio_segment_counts]
        token_counts = [int(k) for k in audio_token_counts]
        if len(segment_counts) != len(token_counts):
            raise ValueError(
                f"audio_segment_counts has {len(segment_counts)} items but audio_token_counts has {len(token_counts)}"
            )
        if sum(segment_counts) != audio_features.shape[0]:
            raise ValueError(
                f"audio_segment_counts sum to {sum(segment_counts)} but audio_features has "
                f"{audio_features.shape[0]} segments"
            )
        per_segment = self.config.audio_tokens_per_segment
        for item, (segments, kept) in enumerate(zip(segment_counts, token_counts)):
            if segments < 1 or not 0 <= kept <= segments * per_segment:
                raise ValueError(
                    f"audio item {item}: {kept} tokens kept from {segments} segments "
                    f"(each segment yields {per_segment})"
                )
        # Eq. (2): the encoder sees each 30 s segment separately. It is frozen in every stage,
        # so skip building its graph unless someone made it trainable.
        encoder_trainable = any(p.requires_grad for p in self.audio_encoder.parameters())
        if self.audio_encoder_cache is not None and not encoder_trainable:
            states = self.audio_encoder_cache(self.audio_encoder, audio_features)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and encoder_trainable):
                states = self.audio_encoder(audio_features)
        segment_index = torch.cat([torch.arange(c) for c in segment_counts]).to(states.device)
        tokens = self.audio_aligner(states, segment_index)  # eq. (3-5): (S, per_segment, hidden)
        items = torch.split(tokens, segment_counts)
        kept = [item.reshape(-1, item.shape[-1])[:k] for item, k in zip(items, token_counts)]
        return torch.cat(kept, dim=0)

    def get_audio_placeholder_mask(self, input_ids, inputs_embeds) -> torch.Tensor:
        if input_ids is None:
            audio_embed = self.get_input_embeddings()(
                torch.tensor(self.config.audio_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            return (inputs_embeds == audio_embed).all(-1)
        return input_ids == self.config.audio_token_id

    def embed_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings, with the aligner's trained offsets added to ``<|audio_start|>`` /
        ``<|audio_end|>`` (their rows are new tokens: ``vs2 build`` initialises them, the
        alignment stage trains the offsets; see :class:`AudioMarkerOffsets`)."""
        embeds = self.get_input_embeddings()(input_ids)
        markers = (self.config.audio_start_token_id, self.config.audio_end_token_id)
        return self.audio_aligner.markers(embeds, input_ids, markers)

    def _touch_aligner(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Add 0 x (aligner parameters) so a batch without audio still gives the trainable
        aligner a (zero) gradient; distributed data parallel requires every trainable
        parameter to take part in every step."""
        params = [p for p in self.audio_aligner.parameters() if p.requires_grad]
        if not params:
            return inputs_embeds
        zero = sum(p.sum() for p in params) * 0.0
        return inputs_embeds + zero.to(inputs_embeds.dtype)

    # ----- positions ----------------------------------------------------------------------
    def rope_tokens(self) -> RopeTokens:
        vision = self.config.vision_config
        return RopeTokens(
            image_token_id=self.config.image_token_id,
            video_token_id=self.config.video_token_id,
            audio_token_id=self.config.audio_token_id,
            spatial_merge_size=vision.spatial_merge_size,
            tokens_per_second=vision.tokens_per_second,
            audio_window_s=self.config.audio_window_s,
            audio_queries_per_window=self.config.audio_queries_per_window,
        )

    def get_rope_index(
        self,
        input_ids: torch.LongTensor,
        mm_token_type_ids: torch.IntTensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """3D positions for interleaved audio-visual sequences (see :mod:`vs2_plugin.modeling.rope`).

        Same signature as Qwen2.5-VL's; ``mm_token_type_ids`` is accepted and ignored because
        the token ids already say which tokens are image, video or audio.
        """
        return interleaved_rope_index(
            input_ids,
            self.rope_tokens(),
            image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw,
            second_per_grid_ts=second_per_grid_ts,
            attention_mask=attention_mask,
        )

    def compute_3d_position_ids(
        self,
        input_ids,
        image_grid_thw,
        video_grid_thw,
        inputs_embeds,
        attention_mask,
        past_key_values,
        second_per_grid_ts=None,
        mm_token_type_ids=None,
    ):
        past_length = 0 if past_key_values is None else past_key_values.get_seq_length()
        if input_ids is not None and past_length == 0:
            position_ids, self.rope_deltas = self.get_rope_index(
                input_ids,
                image_grid_thw=image_grid_thw,
                video_grid_thw=video_grid_thw,
                second_per_grid_ts=second_per_grid_ts,
                attention_mask=attention_mask,
            )
            return position_ids
        # Decoding (or embeddings only): Qwen's rule, real-token index + cached delta.
        return super().compute_3d_position_ids(
            input_ids=None if past_length else input_ids,
            image_grid_thw=None,
            video_grid_thw=None,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
        )

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        audio_features: torch.Tensor | None = None,
        audio_segment_counts: torch.Tensor | None = None,
        audio_token_counts: torch.Tensor | None = None,
        **kwargs,
    ):
        if inputs_embeds is None:
            inputs_embeds = self.embed_input_ids(input_ids)
        if audio_features is not None and audio_features.shape[0] > 0:
            if audio_segment_counts is None or audio_token_counts is None:
                raise ValueError("audio_features needs audio_segment_counts and audio_token_counts")
            audio_embeds = self.get_audio_features(audio_features, audio_segment_counts, audio_token_counts)
            audio_embeds = audio_embeds.to(inputs_embeds.device, inputs_embeds.dtype)
            audio_mask = self.get_audio_placeholder_mask(input_ids, inputs_embeds)
            if int(audio_mask.sum()) != audio_embeds.shape[0]:
                raise ValueError(
                    f"Audio features and audio tokens do not match, tokens: {int(audio_mask.sum())}, "
                    f"features: {audio_embeds.shape[0]}"
                )
            inputs_embeds = inputs_embeds.masked_scatter(
                audio_mask.unsqueeze(-1).expand_as(inputs_embeds), audio_embeds
            )
        elif self.training:
            inputs_embeds = self._touch_aligner(inputs_embeds)
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )


class VideoSalmonn2ForConditionalGeneration(VideoSalmonn2PreTrainedModel, Qwen2_5_VLForConditionalGeneration):
    def __init__(self, config: VideoSalmonn2Config):
        VideoSalmonn2PreTrainedModel.__init__(self, config)
        self.model = VideoSalmonn2Model(config)
        self.lm_head = torch.nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @property
    def audio_encoder(self):
        return self.model.audio_encoder

    @property
    def audio_aligner(self):
        return self.model.audio_aligner

    def get_rope_index(self, *args, **kwargs):
        return self.model.get_rope_index(*args, **kwargs)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        pixel_values=None,
        pixel_values_videos=None,
        image_grid_thw=None,
        video_grid_thw=None,
        rope_deltas=None,
        mm_token_type_ids=None,
        second_per_grid_ts=None,
        logits_to_keep=0,
        audio_features: torch.Tensor | None = None,
        audio_segment_counts: torch.Tensor | None = None,
        audio_token_counts: torch.Tensor | None = None,
        **kwargs,
    ):
        """Qwen2.5-VL's forward plus ``audio_features`` / ``audio_segment_counts`` /
        ``audio_token_counts`` (see the module docstring)."""
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw,
            rope_deltas=rope_deltas,
            mm_token_type_ids=mm_token_type_ids,
            second_per_grid_ts=second_per_grid_ts,
            logits_to_keep=logits_to_keep,
            audio_features=audio_features,
            audio_segment_counts=audio_segment_counts,
            audio_token_counts=audio_token_counts,
            **kwargs,
        )

    def prepare_inputs_for_generation(
        self,
        input_ids,
        *args,
        audio_features=None,
        audio_segment_counts=None,
        audio_token_counts=None,
        is_first_iteration=False,
        use_cache=True,
        **kwargs,
    ):
        model_inputs = super().prepare_inputs_for_generation(
            input_ids, *args, is_first_iteration=is_first_iteration, use_cache=use_cache, **kwargs
        )
        # Media are consumed by the prefill; decode steps only feed the new token.
        first = is_first_iteration or not use_cache
        model_inputs["audio_features"] = audio_features if first else None
        model_inputs["audio_segment_counts"] = audio_segment_counts if first else None
        model_inputs["audio_token_counts"] = audio_token_counts if first else None
        return model_inputs

    def _prepare_position_ids_for_generation(self, inputs_tensor, model_kwargs):
        text_positions = super(Qwen2_5_VLForConditionalGeneration, self)._prepare_position_ids_for_generation(
            inputs_tensor, model_kwargs
        )
        cache = model_kwargs.get("past_key_values")
        if cache is not None and cache.get_seq_length() != 0 and self.model.rope_deltas is not None:
            return text_positions[None, ...] + self.model.rope_deltas
        input_ids = model_kwargs.get("input_ids")
        if input_ids is None or input_ids.shape[1] == 0:
            input_ids = inputs_tensor
        if input_ids.dim() == 2 and input_ids.dtype in (torch.int, torch.long):
            mm_positions, self.model.rope_deltas = self.model.get_rope_index(
                input_ids,
                image_grid_thw=model_kwargs.get("image_grid_thw"),
                video_grid_thw=model_kwargs.get("video_grid_thw"),
                second_per_grid_ts=model_kwargs.get("second_per_grid_ts"),
                attention_mask=model_kwargs.get("attention_mask"),
            )
        else:
            mm_positions = text_positions.unsqueeze(0).expand(3, -1, -1)
            self.model.rope_deltas = torch.zeros(
                inputs_tensor.shape[0], 1, dtype=torch.long, device=inputs_tensor.device
            )
        return torch.cat([text_positions[None, ...], mm_positions], dim=0)

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        # LLaMA-Factory's chat engine passes second_per_grid_ts as a list; the Qwen2.5-VL
        # expansion splits it as a tensor (num_return_sequences > 1 would crash).
        if isinstance(model_kwargs.get("second_per_grid_ts"), list):
            model_kwargs["second_per_grid_ts"] = torch.tensor(model_kwargs["second_per_grid_ts"])
        # Audio tensors are per segment / per item, not per sample: expand them sample by
        # sample (items are assigned to samples by their <|audio_pad|> counts).
        if expand_size == 1 or model_kwargs.get("audio_features") is None:
            return super()._expand_inputs_for_generation(expand_size, is_encoder_decoder, input_ids, **model_kwargs)
        audio = {key: model_kwargs.pop(key) for key in AUDIO_INPUT_KEYS}
        per_sample = (input_ids == self.config.audio_token_id).sum(dim=1).tolist()
        items_by_sample = _split_items_by_tokens(audio["audio_token_counts"].tolist(), per_sample)
        segment_counts = audio["audio_segment_counts"].tolist()
        segment_starts = [sum(segment_counts[:i]) for i in range(len(segment_counts))]
        features, seg_out, tok_out = [], [], []
        for items in items_by_sample:
            for _ in range(expand_size):
                for i in items:
                    features.append(audio["audio_features"][segment_starts[i] : segment_starts[i] + segment_counts[i]])
                    seg_out.append(segment_counts[i])
                    tok_out.append(int(audio["audio_token_counts"][i]))
        input_ids, model_kwargs = super()._expand_inputs_for_generation(
            expand_size, is_encoder_decoder, input_ids, **model_kwargs
        )
        like = audio["audio_segment_counts"]
        model_kwargs["audio_features"] = torch.cat(features, dim=0)
        model_kwargs["audio_segment_counts"] = torch.tensor(seg_out, dtype=like.dtype, device=like.device)
        model_kwargs["audio_token_counts"] = torch.tensor(tok_out, dtype=like.dtype, device=like.device)
        return input_ids, model_kwargs


def _split_items_by_tokens(item_tokens: list[int], sample_tokens: list[int]) -> list[list[int]]:
    """Assign consecutive audio items to samples so each sample's token total matches.

    An item that kept no tokens cannot be located from ``input_ids``; it goes with the sample
    before it (its features are dropped anyway).
    """
    out, item, count = [], 0, len(item_tokens)
    for need in sample_tokens:
        mine = []
        while need > 0 or (item < count and item_tokens[item] == 0):
            if item >= count:
                raise ValueError("audio_token_counts do not add up to the <|audio_pad|> tokens of each sample")
            mine.append(item)
            need -= item_tokens[item]
            item += 1
        if need < 0:
            raise ValueError("an audio item's tokens span two samples; audio_token_counts do not match input_ids")
        out.append(mine)
    if item != count:
        raise ValueError("more audio items than <|audio_pad|> tokens in input_ids")
    return out
