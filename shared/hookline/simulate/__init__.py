"""Acting as a provider: realistic events, signed as each provider signs them.

Used by `hookline send` (post them, alone or as a load) and `hookline event`
(write one as an API Gateway event for `sam local invoke`). Bodies come from
fixtures/ (modelled on each provider's documented examples).
"""
