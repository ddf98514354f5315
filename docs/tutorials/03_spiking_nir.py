# %% [markdown]
# # Placeholder for 03_spiking_nir
#
# Written on branch `tutorials`; this stub only lets the `docsite` branch build.

# %%
print("placeholder")
